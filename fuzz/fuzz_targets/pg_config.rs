//! The PostgreSQL store's settings: a `database = "postgresql://..."` URL
//! (every hook parses it on every call) and pgpass lines. A bad one must
//! be a one-line error or no match, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match tollgate_core::pg::Target::parse(text) {
        Ok(t) => {
            let _ = t.to_string();
        }
        Err(e) => assert!(!e.contains('\n'), "{e}"),
    }
    let _ = tollgate_core::pg::pgpass_lookup(text, "localhost", 5432, "tollgate", "tollgate");
});
