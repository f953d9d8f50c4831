//! tollgate.toml: every hook parses it on every call, so a broken file must
//! end in a one-line error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = tollgate_core::Config::parse(text) {
        let _ = format!("{e:#}");
    }
});
