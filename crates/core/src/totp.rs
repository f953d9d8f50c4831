//! TOTP (RFC 6238): HMAC-SHA1, 6 digits, 30-second steps, one step of clock
//! skew either way, and replay protection by the last accepted step.

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

pub const STEP_SECS: i64 = 30;
pub const DIGITS: usize = 6;
/// Steps accepted on either side of the current one.
pub const SKEW: i64 = 1;

/// A new random secret (160 bits, as RFC 4226 recommends), base32.
pub fn new_secret() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut b = [0u8; 20];
    OsRng.fill_bytes(&mut b);
    BASE32_NOPAD.encode(&b)
}

pub fn decode_secret(s: &str) -> Option<Vec<u8>> {
    BASE32_NOPAD.decode(s.trim().trim_end_matches('=').to_ascii_uppercase().as_bytes()).ok()
}

/// The code for one time step (RFC 4226 dynamic truncation).
pub fn code_at(secret: &[u8], step: i64) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&(step as u64).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!("{:0width$}", bin % 10u32.pow(DIGITS as u32), width = DIGITS)
}

pub fn step_of(now: i64) -> i64 {
    now.div_euclid(STEP_SECS)
}

/// The step a code matches, within the skew window and after `last_step`
/// (a code once accepted is never accepted again). Every candidate is
/// compared in constant time, and all of them are always computed.
pub fn verify(secret: &[u8], code: &str, now: i64, last_step: Option<i64>) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut found = None;
    for step in step_of(now) - SKEW..=step_of(now) + SKEW {
        let ok: bool = code_at(secret, step).as_bytes().ct_eq(code.as_bytes()).into();
        if ok && last_step.is_none_or(|l| step > l) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// otpauth:// URI for authenticator apps.
pub fn uri(issuer: &str, user: &str, secret: &str) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(user),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B, SHA-1 seed, truncated to 6 digits.
    const SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_vectors() {
        for (t, want) in [
            (59, "287082"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
            (2000000000, "279037"),
        ] {
            assert_eq!(code_at(SEED, step_of(t)), want, "t={t}");
        }
    }

    #[test]
    fn skew_and_replay() {
        let now = 1_800_000_000;
        let cur = code_at(SEED, step_of(now));
        assert_eq!(verify(SEED, &cur, now, None), Some(step_of(now)));
        let prev = code_at(SEED, step_of(now) - 1);
        assert_eq!(verify(SEED, &prev, now, None), Some(step_of(now) - 1));
        let old = code_at(SEED, step_of(now) - 2);
        assert_eq!(verify(SEED, &old, now, None), None, "two steps back is outside the window");
        assert_eq!(verify(SEED, &cur, now, Some(step_of(now))), None, "a used code is refused");
        let next = code_at(SEED, step_of(now) + 1);
        assert_eq!(verify(SEED, &next, now, Some(step_of(now))), Some(step_of(now) + 1));
        for bad in ["", "12345", "1234567", "abcdef", "12 345"] {
            assert_eq!(verify(SEED, bad, now, None), None);
        }
    }

    #[test]
    fn secrets_and_uri() {
        let s = new_secret();
        assert_eq!(decode_secret(&s).unwrap().len(), 20);
        assert_ne!(s, new_secret());
        assert_eq!(decode_secret("gezdgnbv"), decode_secret("GEZDGNBV"));
        let u = uri("tollgate", "bob@example.com", "ABC");
        assert_eq!(
            u,
            "otpauth://totp/tollgate:bob%40example.com?secret=ABC&issuer=tollgate&algorithm=SHA1&digits=6&period=30"
        );
    }
}
