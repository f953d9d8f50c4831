//! An admin trying a hook by hand gets its usage, not a DENY line.

use std::process::Command;

#[test]
fn hooks_answer_help_and_version() {
    for (hook, bin) in [
        ("auth-verify", env!("CARGO_BIN_EXE_auth-verify")),
        ("client-connect", env!("CARGO_BIN_EXE_client-connect")),
        ("client-disconnect", env!("CARGO_BIN_EXE_client-disconnect")),
    ] {
        for flag in ["--help", "-h"] {
            let o = Command::new(bin).arg(flag).env_clear().output().unwrap();
            let out = String::from_utf8_lossy(&o.stdout);
            assert_eq!(o.status.code(), Some(0), "{hook} {flag}: {}", String::from_utf8_lossy(&o.stderr));
            assert!(out.starts_with("usage") && out.contains(hook) && out.contains("Exit:"), "{hook}: {out}");
            assert!(o.stderr.is_empty(), "{hook} {flag} logs nothing");
        }
        let o = Command::new(bin).arg("--version").output().unwrap();
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{hook} {}\n", env!("CARGO_PKG_VERSION")));
        // Anything beside it is OpenVPN's call as usual: refused, one line.
        let o = Command::new(bin).args(["--help", "x"]).env_clear().output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{hook}");
    }
}
