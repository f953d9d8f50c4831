//! argon2id password hashes as PHC strings.
//!
//! `verify` always costs one argon2 computation, also for unknown users
//! (`verify(None, ..)` checks against a dummy hash with the configured cost),
//! so response time does not tell which users exist.

use crate::config::Argon2Params;
use anyhow::{bail, Result};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Longest password accepted: OpenVPN's stock build carries at most 128 bytes.
pub const MAX_PASSWORD: usize = 128;

fn hasher(p: Argon2Params) -> Result<Argon2<'static>> {
    let params = Params::new(p.m_cost_kib, p.t_cost, p.p_cost, None)
        .map_err(|e| anyhow::anyhow!("bad argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A fresh argon2id PHC string with a random salt.
pub fn hash(password: &str, p: Argon2Params) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let h = hasher(p)?.hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    Ok(h.to_string())
}

/// True when `password` matches `phc`. With `phc = None` (unknown user) the
/// same work is done against a dummy hash and the answer is false. A stored
/// hash that does not parse is a mismatch, never a panic. The comparison of
/// the derived keys inside argon2 is constant-time.
pub fn verify(phc: Option<&str>, password: &str, p: Argon2Params) -> bool {
    match phc.and_then(|s| PasswordHash::new(s).ok()) {
        Some(parsed) => hasher(p).map(|h| h.verify_password(password.as_bytes(), &parsed).is_ok()).unwrap_or(false),
        None => {
            // Same cost as a real verify: derive a key with the configured
            // parameters and a fixed salt, then throw it away.
            if let Ok(h) = hasher(p) {
                let mut out = [0u8; 32];
                let _ = h.hash_password_into(password.as_bytes(), b"tollgate-dummy-salt", &mut out);
            }
            false
        }
    }
}

/// Whether a stored hash was made with other parameters than the configured
/// ones (and should be rehashed after a successful login).
pub fn needs_rehash(phc: &str, p: Argon2Params) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => {
            let get = |k: &str| h.params.get_decimal(k);
            h.algorithm.as_str() != "argon2id"
                || get("m") != Some(p.m_cost_kib)
                || get("t") != Some(p.t_cost)
                || get("p") != Some(p.p_cost)
        }
        Err(_) => true,
    }
}

/// Admin-side rules for a new password.
pub fn check_new(password: &str) -> Result<()> {
    if password.chars().count() < 8 {
        bail!("password must be at least 8 characters");
    }
    if password.len() > MAX_PASSWORD {
        bail!("password must be at most {MAX_PASSWORD} bytes (OpenVPN's limit)");
    }
    if password.chars().any(|c| c.is_control()) {
        bail!("password must not contain control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Argon2Params = Argon2Params { m_cost_kib: 64, t_cost: 1, p_cost: 1 };

    #[test]
    fn roundtrip() {
        let h = hash("correct horse", FAST).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(verify(Some(&h), "correct horse", FAST));
        assert!(!verify(Some(&h), "correct horsE", FAST));
        assert!(!verify(None, "correct horse", FAST));
        assert!(!verify(Some("not a phc string"), "x", FAST));
        assert_ne!(h, hash("correct horse", FAST).unwrap(), "salts must differ");
    }

    #[test]
    fn rehash_detection() {
        let h = hash("correct horse", FAST).unwrap();
        assert!(!needs_rehash(&h, FAST));
        assert!(needs_rehash(&h, Argon2Params { m_cost_kib: 128, ..FAST }));
    }

    #[test]
    fn new_password_rules() {
        assert!(check_new("short").is_err());
        assert!(check_new("long enough").is_ok());
        assert!(check_new("tab\there1").is_err());
        assert!(check_new(&"x".repeat(129)).is_err());
    }
}
