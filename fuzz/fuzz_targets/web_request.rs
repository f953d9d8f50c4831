//! What a browser (or anyone) sends `tollgate web`: a request head, its
//! query or form body, its cookies, a bearer token, a forwarded address. Parsed or refused with a one-line
//! reason, never a panic; a parsed head stays within the limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_core::{http, oidc, selfservice};

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
            if let Some(site) = http::cookie(&head.cookies, "tollgate_site") {
                let _ = oidc::is_secret(site);
            }
            if let Some(t) = &head.bearer {
                let _ = selfservice::is_token(t);
            }
            if let Some(a) = &head.forwarded_for {
                assert!(!a.contains(','), "{a:?}");
                let _ = a.parse::<std::net::IpAddr>();
            }
            let _ = oidc::parse_form(&String::from_utf8_lossy(&data[start..]));
        }
        Ok(None) => assert!(data.len() < http::MAX_HEAD),
        Err(why) => assert!(!why.contains('\n'), "{why:?}"),
    }
});
