//! What a browser (or anyone) sends `tollgate web`: a request head, its
//! query or form body, its cookies. Parsed or refused with a one-line
//! reason, never a panic; a parsed head stays within the limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_core::{http, oidc};

fuzz_target!(|data: &[u8]| {
    match http::parse_head(data) {
        Ok(Some((head, start))) => {
            assert!(start <= data.len());
            assert!(head.path.starts_with('/') && head.content_length <= http::MAX_BODY);
            if let Ok(pairs) = oidc::parse_form(&head.query) {
                if let Some(l) = oidc::get(&pairs, "l") {
                    let _ = oidc::is_secret(l);
                }
            }
            let _ = http::cookie(&head.cookies, "tollgate_sso");
            let _ = oidc::parse_form(&String::from_utf8_lossy(&data[start..]));
        }
        Ok(None) => assert!(data.len() < http::MAX_HEAD),
        Err(why) => assert!(!why.contains('\n'), "{why:?}"),
    }
});
