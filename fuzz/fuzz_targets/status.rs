//! OpenVPN's live client list: a status file (status-version 2 or 3) and
//! the management interface's `status 3` reply with `>CLIENT:…` and other
//! real-time notifications interleaved. Client-controlled fields (a
//! username still in its handshake) end up in both.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_core::{mgmt, names};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(s) = mgmt::parse_status(&text) {
        for c in &s.clients {
            assert_eq!(names::canonical_ip(&c.real_ip), c.real_ip, "addresses come out canonical");
        }
    }
    let mut lines = text.lines().map(str::to_string).chain(std::iter::once("END".to_string()));
    let _ = mgmt::read_status_reply(|| lines.next().ok_or_else(|| anyhow::anyhow!("end of input")));
    for cell in text.split(['\t', ',', '\n']) {
        let _ = mgmt::split_addr(cell);
    }
});
