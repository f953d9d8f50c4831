//! An OpenVPN server config as `tollgate doctor` reads it: directives,
//! quotes, escapes, comments and inline blocks, then each hook command
//! split again into its argv.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_core::ovpn_conf;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let conf = ovpn_conf::parse(&text);
    let lines = text.lines().count();
    for d in &conf {
        assert!(d.line >= 1 && d.line <= lines, "line numbers point into the file");
        for a in &d.args {
            let _ = ovpn_conf::split(a);
        }
    }
});
