//! RADIUS packets (RFC 2865), pure: the PAP Access-Request signed with
//! Message-Authenticator (RFC 3579, placed first as the BlastRADIUS
//! advisory asks), and the answer checked by its Response Authenticator and
//! Message-Authenticator, then read as a `directory::Answer`. The network
//! exchange (retransmissions, servers in turn) is tollgate-directory's.
//!
//! Written here rather than taken from a crate: the one maintained client
//! (`radius` 0.4) is async (tokio) and leaves Message-Authenticator to its
//! caller; what is needed is two packet types.

use crate::directory::Answer;
use data_encoding::{HEXLOWER, HEXLOWER_PERMISSIVE};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use subtle::ConstantTimeEq;

const ACCESS_REQUEST: u8 = 1;
const ACCESS_ACCEPT: u8 = 2;
const ACCESS_REJECT: u8 = 3;
const ACCESS_CHALLENGE: u8 = 11;

const USER_NAME: u8 = 1;
const USER_PASSWORD: u8 = 2;
const FRAMED_IP_ADDRESS: u8 = 8;
const FILTER_ID: u8 = 11;
const REPLY_MESSAGE: u8 = 18;
const STATE: u8 = 24;
const CLASS: u8 = 25;
const CALLING_STATION_ID: u8 = 31;
const NAS_IDENTIFIER: u8 = 32;
const MESSAGE_AUTHENTICATOR: u8 = 80;

/// The largest packet RFC 2865 allows.
pub const MAX_PACKET: usize = 4096;

/// What goes into one Access-Request. Not `Debug`: it holds the password.
pub struct Login<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// The State of the challenge being answered.
    pub state: Option<&'a [u8]>,
    pub calling_station: Option<&'a str>,
    pub nas_identifier: &'a str,
}

/// A verified answer: its code and attributes in order.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub code: u8,
    pub attributes: Vec<(u8, Vec<u8>)>,
}

fn attr(buf: &mut Vec<u8>, t: u8, value: &[u8]) -> Result<(), String> {
    if value.len() > 253 {
        return Err(format!("attribute {t} is longer than 253 bytes"));
    }
    buf.push(t);
    buf.push(value.len() as u8 + 2);
    buf.extend_from_slice(value);
    Ok(())
}

/// RFC 2865 5.2: the password padded to 16-byte blocks, each XORed with
/// MD5(secret + the previous block), the first with the authenticator.
pub fn hide_password(password: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Vec<u8> {
    let mut padded = password.to_vec();
    padded.resize(password.len().div_ceil(16).max(1) * 16, 0);
    let mut out = Vec::with_capacity(padded.len());
    let mut prev: Vec<u8> = authenticator.to_vec();
    for block in padded.chunks(16) {
        let key = Md5::new().chain_update(secret).chain_update(&prev).finalize();
        let c: Vec<u8> = block.iter().zip(key.iter()).map(|(p, k)| p ^ k).collect();
        out.extend_from_slice(&c);
        prev = c;
    }
    out
}

fn hmac_md5(secret: &[u8], data: &[u8]) -> [u8; 16] {
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Build an Access-Request with identifier `id` and Request Authenticator
/// `authenticator`; Message-Authenticator first.
pub fn access_request(id: u8, authenticator: &[u8; 16], secret: &[u8], l: &Login) -> Result<Vec<u8>, String> {
    if l.password.len() > 128 {
        return Err("password longer than 128 bytes (RADIUS's limit)".into());
    }
    let mut p = vec![ACCESS_REQUEST, id, 0, 0];
    p.extend_from_slice(authenticator);
    attr(&mut p, MESSAGE_AUTHENTICATOR, &[0; 16])?;
    attr(&mut p, USER_NAME, l.username.as_bytes()).map_err(|_| "username longer than 253 bytes")?;
    attr(&mut p, USER_PASSWORD, &hide_password(l.password.as_bytes(), secret, authenticator))?;
    attr(&mut p, NAS_IDENTIFIER, l.nas_identifier.as_bytes())?;
    if let Some(c) = l.calling_station {
        attr(&mut p, CALLING_STATION_ID, c.as_bytes())?;
    }
    if let Some(s) = l.state {
        attr(&mut p, STATE, s).map_err(|_| "challenge state longer than 253 bytes")?;
    }
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    let mac = hmac_md5(secret, &p);
    p[22..38].copy_from_slice(&mac);
    Ok(p)
}

/// Split attributes; `None` when they do not fill the packet exactly.
fn attributes(mut b: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (t, len) = (b[0], *b.get(1)? as usize);
        if len < 2 || len > b.len() {
            return None;
        }
        out.push((t, b[2..len].to_vec()));
        b = &b[len..];
    }
    Some(out)
}

/// Why an answer is not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Bad {
    /// Not an answer to this request (another identifier): keep waiting.
    NotOurs,
    /// Malformed or failing verification (a wrong secret, a forgery).
    Invalid(String),
    /// Verified, so from the server, but unsigned where a signature is
    /// required: no use waiting for another answer.
    Unsigned,
}

/// Check an answer to the request `id`/`authenticator` and take it apart.
pub fn parse_response(
    buf: &[u8],
    id: u8,
    authenticator: &[u8; 16],
    secret: &[u8],
    require_ma: bool,
) -> Result<Response, Bad> {
    if buf.len() < 20 {
        return Err(Bad::Invalid(format!("a {}-byte packet is too short", buf.len())));
    }
    if buf[1] != id {
        return Err(Bad::NotOurs);
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if !(20..=MAX_PACKET).contains(&len) || len > buf.len() {
        return Err(Bad::Invalid(format!("length field {len} does not fit the {}-byte packet", buf.len())));
    }
    let p = &buf[..len];
    let code = p[0];
    if ![ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE].contains(&code) {
        return Err(Bad::Invalid(format!("unexpected packet code {code}")));
    }
    // Response Authenticator = MD5(code, id, length, request authenticator,
    // attributes, secret).
    let want = Md5::new()
        .chain_update(&p[..4])
        .chain_update(authenticator)
        .chain_update(&p[20..])
        .chain_update(secret)
        .finalize();
    if !bool::from(want.as_slice().ct_eq(&p[4..20])) {
        return Err(Bad::Invalid("response authenticator does not verify (is the secret right?)".into()));
    }
    let attrs = attributes(&p[20..]).ok_or_else(|| Bad::Invalid("malformed attributes".into()))?;
    // Message-Authenticator: HMAC-MD5 of the packet with the request's
    // authenticator in place and the attribute's own value zeroed.
    let mut at = 20;
    let mut seen = false;
    for (t, v) in &attrs {
        if *t == MESSAGE_AUTHENTICATOR {
            if v.len() != 16 || seen {
                return Err(Bad::Invalid("malformed Message-Authenticator".into()));
            }
            seen = true;
            let mut copy = p.to_vec();
            copy[4..20].copy_from_slice(authenticator);
            copy[at + 2..at + 18].fill(0);
            if !bool::from(hmac_md5(secret, &copy).ct_eq(v.as_slice())) {
                return Err(Bad::Invalid("Message-Authenticator does not verify".into()));
            }
        }
        at += v.len() + 2;
    }
    if require_ma && !seen {
        return Err(Bad::Unsigned);
    }
    Ok(Response { code, attributes: attrs })
}

/// Sign `p` as the server would answer the request `authenticator`: its
/// length field, Message-Authenticator (if it has one) and Response
/// Authenticator. For tests and fuzzing; tollgate itself only verifies.
pub fn sign_response(p: &mut [u8], authenticator: &[u8; 16], secret: &[u8]) {
    if p.len() < 20 {
        return;
    }
    let len = p.len().min(MAX_PACKET);
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[4..20].copy_from_slice(authenticator);
    if let Some(attrs) = attributes(&p[20..len]) {
        let mut at = 20;
        for (t, v) in attrs {
            if t == MESSAGE_AUTHENTICATOR && v.len() == 16 {
                p[at + 2..at + 18].fill(0);
                let mac = hmac_md5(secret, &p[..len]);
                p[at + 2..at + 18].copy_from_slice(&mac);
                break;
            }
            at += v.len() + 2;
        }
    }
    let ra = Md5::new().chain_update(&p[..len]).chain_update(secret).finalize();
    p[4..20].copy_from_slice(&ra);
}

/// An attribute's name and value as text, for the post-auth program.
fn describe(t: u8, v: &[u8]) -> (String, String) {
    let name = match t {
        USER_NAME => "User-Name",
        FRAMED_IP_ADDRESS => "Framed-IP-Address",
        9 => "Framed-IP-Netmask",
        FILTER_ID => "Filter-Id",
        12 => "Framed-MTU",
        REPLY_MESSAGE => "Reply-Message",
        22 => "Framed-Route",
        CLASS => "Class",
        26 => "Vendor-Specific",
        27 => "Session-Timeout",
        28 => "Idle-Timeout",
        85 => "Acct-Interim-Interval",
        88 => "Framed-Pool",
        _ => "",
    };
    let name = if name.is_empty() { format!("Attr-{t}") } else { name.to_string() };
    let value = match (t, v.len()) {
        (8 | 9, 4) => Ipv4Addr::new(v[0], v[1], v[2], v[3]).to_string(),
        (12 | 27 | 28 | 85, 4) => u32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string(),
        _ => text(v),
    };
    (name, value)
}

/// UTF-8 without control characters as it is; anything else as 0x-hex.
fn text(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => format!("0x{}", HEXLOWER.encode(v)),
    }
}

/// What a verified answer means for tollgate.
pub fn answer(r: &Response) -> Answer {
    let all = |t: u8| r.attributes.iter().filter(move |(a, _)| *a == t).map(|(_, v)| v);
    // Messages for people: lines become one, in one_line below.
    let message: Vec<String> = all(REPLY_MESSAGE).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
    match r.code {
        ACCESS_ACCEPT => {
            let groups = all(CLASS).chain(all(FILTER_ID)).map(|v| text(v)).collect();
            // 255.255.255.254 and .255 mean "the NAS picks" and "the
            // user may": no address of the server's choosing.
            let static_ip = all(FRAMED_IP_ADDRESS)
                .find_map(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
                .map(Ipv4Addr::from)
                .filter(|ip| !ip.is_broadcast() && *ip != Ipv4Addr::new(255, 255, 255, 254) && !ip.is_unspecified());
            let mut reply: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (t, v) in &r.attributes {
                if *t != MESSAGE_AUTHENTICATOR && *t != STATE {
                    let (k, v) = describe(*t, v);
                    reply.entry(k).or_default().push(v);
                }
            }
            Answer::Accept { dn: String::new(), groups, static_ip, reply }
        }
        ACCESS_CHALLENGE => {
            let state = all(STATE).next().map(|s| HEXLOWER.encode(s)).unwrap_or_default();
            let message = message.join(" ");
            let message = if message.trim().is_empty() { "Enter the code".to_string() } else { message };
            Answer::Challenge { state, message: crate::names::one_line(&message, 200) }
        }
        _ => {
            let m = message.join(" ");
            let reason = if m.trim().is_empty() { "access rejected".into() } else { format!("access rejected: {m}") };
            Answer::Reject { reason: crate::names::one_line(&reason, 200) }
        }
    }
}

/// Bytes from lowercase or uppercase hex; `None` for anything else.
pub fn hex(s: &str) -> Option<Vec<u8>> {
    HEXLOWER_PERMISSIVE.decode(s.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"xyzzy5461";

    fn login<'a>(pw: &'a str, state: Option<&'a [u8]>) -> Login<'a> {
        Login { username: "nemo", password: pw, state, calling_station: Some("192.0.2.7"), nas_identifier: "tollgate" }
    }

    /// A server's answer to `req`, built the way RFC 2865 and 3579 say.
    fn reply(code: u8, req: &[u8], attrs: &[(u8, &[u8])], with_ma: bool) -> Vec<u8> {
        let mut p = vec![code, req[1], 0, 0];
        p.extend_from_slice(&[0; 16]);
        if with_ma {
            attr(&mut p, MESSAGE_AUTHENTICATOR, &[0; 16]).unwrap();
        }
        for (t, v) in attrs {
            attr(&mut p, *t, v).unwrap();
        }
        sign_response(&mut p, req[4..20].try_into().unwrap(), SECRET);
        p
    }

    fn unhide(hidden: &[u8], authenticator: &[u8; 16]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = authenticator.to_vec();
        for block in hidden.chunks(16) {
            let key = Md5::new().chain_update(SECRET).chain_update(&prev).finalize();
            out.extend(block.iter().zip(key.iter()).map(|(c, k)| c ^ k));
            prev = block.to_vec();
        }
        while out.last() == Some(&0) {
            out.pop();
        }
        out
    }

    #[test]
    fn password_hiding_round_trips_across_blocks() {
        let a = [7u8; 16];
        for pw in ["", "a", "exactly16bytes!!", "a password longer than one block of sixteen"] {
            let h = hide_password(pw.as_bytes(), SECRET, &a);
            assert_eq!(h.len() % 16, 0);
            assert!(!h.is_empty());
            assert_eq!(unhide(&h, &a), pw.as_bytes(), "{pw:?}");
            if !pw.is_empty() {
                assert!(!h.windows(pw.len().min(4)).any(|w| w == &pw.as_bytes()[..pw.len().min(4)]));
            }
        }
    }

    #[test]
    fn request_is_signed_and_carries_what_it_should() {
        let a = [3u8; 16];
        let p = access_request(42, &a, SECRET, &login("pw", Some(b"st"))).unwrap();
        assert_eq!((p[0], p[1], u16::from_be_bytes([p[2], p[3]]) as usize), (ACCESS_REQUEST, 42, p.len()));
        let attrs = attributes(&p[20..]).unwrap();
        assert_eq!(attrs[0].0, MESSAGE_AUTHENTICATOR, "Message-Authenticator comes first");
        let mut zeroed = p.clone();
        zeroed[22..38].fill(0);
        assert_eq!(hmac_md5(SECRET, &zeroed).as_slice(), attrs[0].1.as_slice());
        let get = |t| attrs.iter().find(|(a, _)| *a == t).map(|(_, v)| v.clone());
        assert_eq!(get(USER_NAME).unwrap(), b"nemo");
        assert_eq!(unhide(&get(USER_PASSWORD).unwrap(), &a), b"pw");
        assert_eq!(get(STATE).unwrap(), b"st");
        assert_eq!(get(NAS_IDENTIFIER).unwrap(), b"tollgate");
        assert_eq!(get(CALLING_STATION_ID).unwrap(), b"192.0.2.7");
        assert!(access_request(1, &a, SECRET, &login(&"x".repeat(129), None)).unwrap_err().contains("128"));
        let long = "u".repeat(254);
        let l = Login { username: &long, ..login("pw", None) };
        assert!(access_request(1, &a, SECRET, &l).unwrap_err().contains("username"));
    }

    #[test]
    fn answers_are_verified() {
        let a = [9u8; 16];
        let req = access_request(5, &a, SECRET, &login("pw", None)).unwrap();
        let ok = reply(ACCESS_ACCEPT, &req, &[(CLASS, b"eng")], true);
        let r = parse_response(&ok, 5, &a, SECRET, true).unwrap();
        assert_eq!(r.code, ACCESS_ACCEPT);
        // Another identifier: someone else's answer.
        assert_eq!(parse_response(&ok, 6, &a, SECRET, true), Err(Bad::NotOurs));
        // Any changed byte, the wrong secret or another request: refused.
        for i in [0, 3, 4, 19, 20, 40, ok.len() - 1] {
            let mut bad = ok.clone();
            bad[i] ^= 1;
            assert!(matches!(parse_response(&bad, 5, &a, SECRET, true), Err(Bad::Invalid(_))), "byte {i}");
        }
        assert!(matches!(parse_response(&ok, 5, &a, b"other", true), Err(Bad::Invalid(_))));
        assert!(matches!(parse_response(&ok, 5, &[8; 16], SECRET, true), Err(Bad::Invalid(_))));
        // A right Response Authenticator but a forged Message-Authenticator.
        let mut forged = ok.clone();
        forged[30] ^= 1;
        let ra = Md5::new().chain_update(&forged[..4]).chain_update(a).chain_update(&forged[20..]).chain_update(SECRET);
        forged[4..20].copy_from_slice(&ra.finalize());
        let e = parse_response(&forged, 5, &a, SECRET, true).unwrap_err();
        assert_eq!(e, Bad::Invalid("Message-Authenticator does not verify".into()));
        // Without Message-Authenticator: only when the admin allows it.
        let bare = reply(ACCESS_REJECT, &req, &[], false);
        assert_eq!(parse_response(&bare, 5, &a, SECRET, true), Err(Bad::Unsigned));
        assert_eq!(parse_response(&bare, 5, &a, SECRET, false).unwrap().code, ACCESS_REJECT);
        // Truncated, overlong attributes, short packets, a request echoed.
        for junk in [&ok[..19], &ok[..ok.len() - 1], &req[..]] {
            assert!(matches!(parse_response(junk, 5, &a, SECRET, true), Err(Bad::Invalid(_))));
        }
    }

    #[test]
    fn what_each_answer_means() {
        let a = [1u8; 16];
        let req = access_request(1, &a, SECRET, &login("pw", None)).unwrap();
        let parse = |p: Vec<u8>| answer(&parse_response(&p, 1, &a, SECRET, true).unwrap());
        let accept = reply(
            ACCESS_ACCEPT,
            &req,
            &[(CLASS, b"eng"), (FILTER_ID, b"ops"), (FRAMED_IP_ADDRESS, &[10, 8, 0, 50]), (27, &[0, 0, 14, 16])],
            true,
        );
        let Answer::Accept { groups, static_ip, reply: attrs, .. } = parse(accept) else { panic!() };
        assert_eq!(groups, ["eng", "ops"]);
        assert_eq!(static_ip, Some(Ipv4Addr::new(10, 8, 0, 50)));
        assert_eq!(attrs["Framed-IP-Address"], ["10.8.0.50"]);
        assert_eq!(attrs["Session-Timeout"], ["3600"]);
        assert!(!attrs.contains_key("Attr-80"), "Message-Authenticator is not a reply value");
        for pool in [[255, 255, 255, 254], [255, 255, 255, 255]] {
            let p = reply(ACCESS_ACCEPT, &req, &[(FRAMED_IP_ADDRESS, &pool)], true);
            assert!(matches!(parse(p), Answer::Accept { static_ip: None, .. }));
        }
        let bin = reply(ACCESS_ACCEPT, &req, &[(CLASS, &[0, 1, 0xff])], true);
        assert!(matches!(parse(bin), Answer::Accept { groups, .. } if groups == ["0x0001ff"]));
        let chal = reply(ACCESS_CHALLENGE, &req, &[(REPLY_MESSAGE, b"Enter the code"), (STATE, &[0xab, 0x01])], true);
        assert_eq!(parse(chal), Answer::Challenge { state: "ab01".into(), message: "Enter the code".into() });
        let rej = reply(ACCESS_REJECT, &req, &[(REPLY_MESSAGE, b"no\nway")], true);
        assert!(matches!(parse(rej), Answer::Reject { reason } if !reason.contains('\n') && reason.contains("no")));
    }

    #[test]
    fn hex_state() {
        assert_eq!(hex("ab01"), Some(vec![0xab, 1]));
        assert_eq!(hex("AB01"), Some(vec![0xab, 1]));
        for bad in ["abc", "zz", "é1"] {
            assert_eq!(hex(bad), None);
        }
    }
}
