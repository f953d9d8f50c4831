//! argon2id password hashes as PHC strings.
//!
//! `verify` costs the same argon2 work for every attempt, so response time
//! does not tell which users exist: unknown users (`verify(None, ..)`) pay
//! the configured cost against a dummy hash, and a user whose hash was made
//! with a cheaper cost (before the admin raised `[argon2]`) pays the
//! difference in padding work (`padding`).

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
/// The stored hash of an account that has no tollgate password (its auth
/// method checks passwords elsewhere). No password verifies against it.
pub const NO_PASSWORD: &str = "!";

pub fn verify(phc: Option<&str>, password: &str, p: Argon2Params) -> bool {
    match phc.and_then(|s| PasswordHash::new(s).ok()) {
        Some(parsed) => {
            let ok = hasher(p).map(|h| h.verify_password(password.as_bytes(), &parsed).is_ok()).unwrap_or(false);
            if let Some(stored) = params_of(&parsed) {
                burn(password, &padding(stored, p));
            }
            ok
        }
        None => {
            // Same cost as a real verify: derive a key with the configured
            // parameters and a fixed salt, then throw it away.
            burn(password, &[p]);
            false
        }
    }
}

/// Derive keys and throw them away: work that only takes time. One
/// buffer of the largest memory serves them all, so padding allocates no
/// more than the unknown-user path does.
fn burn(password: &str, each: &[Argon2Params]) {
    let Some(m) = each.iter().map(|p| p.m_cost_kib).max() else { return };
    let mut memory = vec![argon2::Block::default(); m as usize];
    for &p in each {
        if let Ok(h) = hasher(p) {
            let mut out = [0u8; 32];
            let blocks = &mut memory[..p.m_cost_kib as usize];
            let _ = h.hash_password_into_with_memory(password.as_bytes(), b"tollgate-dummy-salt", &mut out, blocks);
        }
    }
}

/// The cost parameters a PHC string was made with.
fn params_of(h: &PasswordHash) -> Option<Argon2Params> {
    let get = |k: &str| h.params.get_decimal(k);
    Some(Argon2Params { m_cost_kib: get("m")?, t_cost: get("t")?, p_cost: get("p")? })
}

/// Argon2's work is memory blocks times passes (lanes run one after the
/// other here, so `p` does not change it).
fn work(p: Argon2Params) -> u64 {
    u64::from(p.m_cost_kib) * u64::from(p.t_cost)
}

/// Pure: the extra derivations that bring a verification at `stored` up
/// to the work of one at `configured`: whole passes over the configured
/// memory, then one pass over the remainder. Nothing when `stored` already
/// costs as much. (A hash costlier than the configured cost cannot be made
/// cheaper: lowering `[argon2]` leaves such users slower until their next
/// login rehashes them; the admin guide says so.)
pub fn padding(stored: Argon2Params, configured: Argon2Params) -> Vec<Argon2Params> {
    let (have, want) = (work(stored), work(configured));
    if have >= want {
        return Vec::new();
    }
    let mut left = want - have;
    let mut out = Vec::new();
    let m = u64::from(configured.m_cost_kib);
    let passes = left / m;
    if passes > 0 {
        out.push(Argon2Params { t_cost: passes as u32, ..configured });
        left -= passes * m;
    }
    // Argon2 needs at least 8 KiB per lane; a smaller rest is noise.
    let min = 8 * u64::from(configured.p_cost);
    if left >= min {
        out.push(Argon2Params { m_cost_kib: left as u32, t_cost: 1, ..configured });
    }
    out
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
    fn padding_brings_cheaper_hashes_up_to_the_configured_work() {
        let cfg = Argon2Params { m_cost_kib: 65536, t_cost: 3, p_cost: 1 };
        let total = |stored: Argon2Params| work(stored) + padding(stored, cfg).into_iter().map(work).sum::<u64>();
        for stored in [
            Argon2Params { m_cost_kib: 19456, t_cost: 2, p_cost: 1 },
            Argon2Params { m_cost_kib: 65536, t_cost: 1, p_cost: 1 },
            Argon2Params { m_cost_kib: 256, t_cost: 1, p_cost: 1 },
            Argon2Params { m_cost_kib: 8, t_cost: 1, p_cost: 1 },
        ] {
            let t = total(stored);
            assert!(t <= work(cfg) && work(cfg) - t < 8, "{stored:?}: {t} vs {}", work(cfg));
            // The bulk runs over the configured memory, like the unknown-user path.
            assert!(padding(stored, cfg).iter().all(|p| p.m_cost_kib <= cfg.m_cost_kib));
        }
        assert!(padding(cfg, cfg).is_empty());
        assert!(padding(Argon2Params { t_cost: 4, ..cfg }, cfg).is_empty());
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
