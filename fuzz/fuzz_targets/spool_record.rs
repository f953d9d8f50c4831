//! A disconnect record in the spool: written by client-disconnect as the
//! OpenVPN user, read by `tollgate sweep` as root, so a compromised hook
//! controls it entirely.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_core::sessions::CloseRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<CloseRecord>(data) {
        let back = serde_json::to_vec(&r).expect("a parsed record serializes");
        assert_eq!(serde_json::from_slice::<CloseRecord>(&back).expect("and parses again"), r);
    }
});
