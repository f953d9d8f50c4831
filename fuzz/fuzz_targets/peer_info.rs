//! The client's peer info (IV_*, UV_* variables: whatever the client
//! sends), as device binding and the client checks read it. Input lines are
//! NAME=VALUE.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;
use tollgate_core::devices::{self, Binding};
use tollgate_core::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let vars: HashMap<String, String> =
        text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    static CFG: OnceLock<Config> = OnceLock::new();
    let cfg = CFG.get_or_init(|| {
        Config::parse(
            "database = \"/x.db\"\nserver = \"s\"\n[client_checks]\nplatforms = [\"win\", \"mac\"]\nmin_version = \"2.5.0\"\nrequire = { UV_CORP = \"yes\" }\n",
        )
        .expect("fixed config parses")
    });
    let peer = |k: &str| vars.get(k).cloned();
    let _ = devices::client_check(&cfg.client_checks, &peer);
    let registered = vec![("aa:bb:cc:dd:ee:ff".to_string(), true), ("pending-id".to_string(), false)];
    for v in vars.values() {
        let _ = devices::normalize(v);
        let _ = devices::version_lt(v, "2.6.0");
        for mode in [Binding::Auto, Binding::Manual] {
            let _ = devices::check(mode, 2, &registered, Some(v), "IV_HWADDR");
        }
    }
});
