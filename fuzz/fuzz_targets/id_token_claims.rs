//! The claims of an ID token (JSON from the provider, after its signature
//! checked): the claim checks and what they prove, never a panic; every
//! reason one line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_core::config::Config;
use tollgate_core::directory::Answer;
use tollgate_core::oidc;

const CONFIG: &str = "[oidc]\nissuer = \"https://idp.example.org\"\nclient_id = \"openvpn\"\n\
    client_secret_file = \"/s\"\nredirect_url = \"https://vpn.example.org/oidc/callback\"\n\
    required_groups = [\"vpn\"]\n";

fuzz_target!(|data: &[u8]| {
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let cfg = Config::parse(CONFIG).unwrap();
    let o = cfg.oidc.as_ref().unwrap();
    if let Err(why) = oidc::check_claims(&claims, o, "https://idp.example.org", Some("nonce"), 1_800_000_000) {
        assert!(!why.contains('\n'), "{why:?}");
    }
    for user in ["alice", ""] {
        match oidc::identity(&claims, o, user) {
            Answer::Reject { reason } => assert!(!reason.chars().any(char::is_control), "{reason:?}"),
            Answer::Accept { groups, .. } => assert!(groups.iter().any(|g| g == "vpn")),
            Answer::NotInGroup { .. } => {}
            other => panic!("claims never make {other:?}"),
        }
    }
});
