//! The post-auth program's stdout: whatever an admin's program prints
//! (or a broken one, or one fed a hostile username) must come out as a
//! checked reply or a one-line reason, and merging its `save` must hold
//! the size bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_core::post_auth;

fuzz_target!(|data: &[u8]| {
    match post_auth::parse_reply(data) {
        Ok(r) => {
            if let Some(q) = &r.challenge {
                assert!(!q.text.chars().any(char::is_control), "a challenge text is one line");
            }
            for t in [&r.reason, &r.client_reason].into_iter().flatten() {
                assert!(!t.contains('\n') && !t.contains('\r'), "reasons are one line");
            }
            if let Some(m) = post_auth::merge_saved(&Default::default(), &r.save) {
                assert!(serde_json::to_vec(&m).unwrap().len() <= post_auth::MAX_OUTPUT);
            }
        }
        Err(e) => assert!(!e.contains('\n'), "one-line reason: {e:?}"),
    }
});
