//! A hook's argv: our flags from the server.conf command string, then
//! OpenVPN's file argument. Arguments are NUL-separated in the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fuzz_target!(|data: &[u8]| {
    let args = data.split(|b| *b == 0).map(|a| OsString::from_vec(a.to_vec()));
    let _ = tollgate_core::openvpn::parse_hook_args(args);
});
