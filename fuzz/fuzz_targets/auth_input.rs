//! What a client controls in auth-user-pass-verify: the via-file
//! credentials (username and password lines, the password possibly
//! `SCRV1:…`, `CRV1::…` or a session token), checked and split as the hook
//! does, then the code checked against a fixed TOTP secret.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_core::{auth, names, openvpn, policy, totp};

fuzz_target!(|data: &[u8]| {
    let Ok(c) = openvpn::parse_credentials(data) else { return };
    let _ = names::for_log(&String::from_utf8_lossy(&c.username));
    if policy::check_credentials(&c.username, &c.password).is_err() {
        return;
    }
    let password = std::str::from_utf8(&c.password).expect("check_credentials proved UTF-8");
    let key = b"12345678901234567890";
    match auth::parse_secret(password) {
        Ok(auth::Secret::Static { code, .. }) | Ok(auth::Secret::Crv1 { code, .. }) => {
            let _ = totp::verify(key, &code, 1_800_000_000, None);
        }
        Ok(auth::Secret::Plain(p)) => {
            let _ = totp::verify(key, &p, 1_800_000_000, Some(1));
        }
        Err(d) => {
            let (log, client) = (d.log_reason(), d.client_reason());
            assert!(!log.contains('\n') && !client.contains('\n'), "reasons are one line");
        }
    }
});
