//! A RADIUS server's answer, or anything else arriving on the helper's
//! socket: verified or refused with a reason, never a panic; whatever is
//! accepted reads as an answer with one-line texts. The first bytes choose
//! whether the input is taken raw or re-signed (so the fuzzer also reaches
//! the attribute parsing behind the authenticator checks).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_core::directory::Answer;
use tollgate_core::radius;

const SECRET: &[u8] = b"fuzz secret";
const AUTH: [u8; 16] = [7; 16];

fuzz_target!(|data: &[u8]| {
    let (sign, require) = match data.first() {
        Some(b) => (b & 1 == 1, b & 2 == 2),
        None => (false, false),
    };
    let mut p = data.get(1..).unwrap_or_default().to_vec();
    if sign && p.len() >= 20 {
        radius::sign_response(&mut p, &AUTH, SECRET);
    }
    let id = p.get(1).copied().unwrap_or(0);
    match radius::parse_response(&p, id, &AUTH, SECRET, require) {
        Ok(r) => match radius::answer(&r) {
            Answer::Challenge { message, .. } => assert!(!message.chars().any(char::is_control)),
            Answer::Reject { reason } => assert!(!reason.chars().any(char::is_control)),
            Answer::Accept { groups, reply, .. } => {
                for v in groups.iter().chain(reply.values().flatten()) {
                    assert!(!v.chars().any(char::is_control), "{v:?}");
                }
            }
            other => panic!("a verified answer is never {other:?}"),
        },
        Err(radius::Bad::Invalid(why)) => assert!(!why.contains('\n')),
        Err(_) => {}
    }
});
