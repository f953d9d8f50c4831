//! gen-ovpn's command-line mistakes read as tollgate's: one line, exit 2.

#[test]
fn command_line_mistakes_are_one_line_and_exit_2() {
    for args in [&["--frob"][..], &[], &["alice"]] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_gen-ovpn")).args(args).output().unwrap();
        let msg = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(msg.lines().count(), 1, "{args:?}: {msg}");
        assert!(msg.starts_with("gen-ovpn: ") && msg.contains("usage: gen-ovpn"), "{msg}");
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_gen-ovpn")).arg("--help").output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Usage: gen-ovpn"));
}
