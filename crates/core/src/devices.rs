//! Device binding and client checks: which hardware ids a user may log in
//! from, and which client software is allowed (pure decisions), and the
//! admin's side of the device records (`tollgate device`).

use crate::db::{params, Db};
use crate::policy::Deny;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Binding {
    Off,
    /// Register the first N distinct devices, refuse others.
    Auto,
    /// Only devices an admin approved.
    Manual,
}

impl Binding {
    pub fn parse(s: &str) -> Option<Binding> {
        match s {
            "off" => Some(Binding::Off),
            "auto" => Some(Binding::Auto),
            "manual" => Some(Binding::Manual),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::Off => "off",
            Binding::Auto => "auto",
            Binding::Manual => "manual",
        }
    }
}

/// A hardware id as stored: MAC addresses in lowercase colon notation
/// whatever the client sent (`AA-BB-…`, `aabb.ccdd.eeff`, `AABBCCDDEEFF`);
/// anything else (OpenVPN Connect sends UUIDs) as it is. None when it is not
/// a usable id.
pub fn normalize(raw: &str) -> Option<String> {
    let t = raw.trim();
    if t.is_empty() || t.len() > 128 || t.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    let hex: String = t.chars().filter(|c| !matches!(c, ':' | '-' | '.')).collect();
    let seps_only = t.chars().all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '-' | '.'));
    if seps_only && hex.len() == 12 && hex.chars().all(|c| c.is_ascii_hexdigit()) && !t.contains("--") {
        let h = hex.to_ascii_lowercase();
        let pairs: Vec<&str> = (0..6).map(|i| &h[2 * i..2 * i + 2]).collect();
        return Some(pairs.join(":"));
    }
    Some(t.to_string())
}

/// What the device check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceVerdict {
    /// Binding off.
    Allowed,
    /// A known, approved device.
    Known(String),
    /// A new device in auto mode with a free slot: register it on success.
    Register(String),
    /// Refused; `pending` is an id to record for the admin to approve
    /// (manual mode), once the password was right.
    Refused { deny: Deny, pending: Option<String> },
}

/// `registered`: the user's devices as (id, approved).
pub fn check(
    mode: Binding,
    max_devices: i64,
    registered: &[(String, bool)],
    presented: Option<&str>,
    source: &str,
) -> DeviceVerdict {
    if mode == Binding::Off {
        return DeviceVerdict::Allowed;
    }
    let Some(id) = presented.and_then(normalize) else {
        let detail = match presented {
            None => format!("client sent no {source}: its profile needs push-peer-info"),
            Some(_) => format!("client sent an unusable {source}"),
        };
        return DeviceVerdict::Refused { deny: Deny::DeviceUnknown { detail }, pending: None };
    };
    match registered.iter().find(|(d, _)| *d == id) {
        Some((_, true)) => DeviceVerdict::Known(id),
        Some((_, false)) => DeviceVerdict::Refused { deny: Deny::DeviceNotApproved { id: id.clone() }, pending: None },
        None if mode == Binding::Manual => {
            DeviceVerdict::Refused { deny: Deny::DeviceNotApproved { id: id.clone() }, pending: Some(id) }
        }
        None => {
            let used = registered.iter().filter(|(_, a)| *a).count() as i64;
            if used < max_devices {
                DeviceVerdict::Register(id)
            } else {
                DeviceVerdict::Refused { deny: Deny::DeviceLimit { id, max: max_devices }, pending: None }
            }
        }
    }
}

/// Rules over the client's peer info (config `[client_checks]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRules {
    /// Allowed IV_PLAT values (empty: any).
    pub platforms: Vec<String>,
    /// Minimum IV_VER.
    pub min_version: Option<String>,
    /// UV_ variables that must be present, with a minimum version ("" = any).
    pub require: BTreeMap<String, String>,
}

/// `peer(name)` returns the client's variable. Returns the first rule the
/// client fails, with a reason that says what to update.
pub fn client_check(rules: &ClientRules, peer: &dyn Fn(&str) -> Option<String>) -> Option<Deny> {
    if !rules.platforms.is_empty() {
        let plat = peer("IV_PLAT").unwrap_or_default();
        if !rules.platforms.iter().any(|p| p.eq_ignore_ascii_case(&plat)) {
            return Some(Deny::ClientRejected {
                log: format!("platform {:?} not in {:?}", plat, rules.platforms),
                client: format!(
                    "this platform ({}) is not allowed; use {}",
                    if plat.is_empty() { "unknown" } else { &plat },
                    rules.platforms.join(", ")
                ),
            });
        }
    }
    if let Some(min) = &rules.min_version {
        let v = peer("IV_VER").unwrap_or_default();
        if version_lt(&v, min) {
            return Some(Deny::ClientRejected {
                log: format!("client version {v:?} older than {min}"),
                client: format!(
                    "your OpenVPN client ({}) is too old: update to {min} or newer",
                    if v.is_empty() { "unknown version" } else { &v }
                ),
            });
        }
    }
    for (name, min) in &rules.require {
        match peer(name) {
            None => {
                return Some(Deny::ClientRejected {
                    log: format!("client sent no {name}"),
                    client: format!("your client does not report {name}: install the required software"),
                })
            }
            Some(v) if !min.is_empty() && version_lt(&v, min) => {
                return Some(Deny::ClientRejected {
                    log: format!("{name} {v:?} older than {min}"),
                    client: format!("{name} is {v}: update it to {min} or newer"),
                })
            }
            _ => {}
        }
    }
    None
}

/// Compare dotted versions numerically ("2.10" > "2.9"); text after the
/// numbers ("2.6.14_git", "3.git::…") is ignored. An unreadable version is
/// older than anything.
pub fn version_lt(v: &str, min: &str) -> bool {
    let nums = |s: &str| -> Vec<u64> {
        s.split('.')
            .map_while(|p| {
                let d: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
                d.parse().ok()
            })
            .collect()
    };
    let (a, b) = (nums(v), nums(min));
    if a.is_empty() {
        return true;
    }
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i).copied().unwrap_or(0), b.get(i).copied().unwrap_or(0));
        if x != y {
            return x < y;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        for raw in ["aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF", "AABBCCDDEEFF", "aabb.ccdd.eeff", " aa:BB:cc:DD:ee:FF "] {
            assert_eq!(normalize(raw).as_deref(), Some("aa:bb:cc:dd:ee:ff"), "{raw}");
        }
        let uuid = "3F2504E0-4F89-11D3-9A0C-0305E82C3301";
        assert_eq!(normalize(uuid).as_deref(), Some(uuid), "UUIDs are kept as they are");
        assert_eq!(normalize(""), None);
        assert_eq!(normalize("a b"), None);
        assert_eq!(normalize(&"x".repeat(200)), None);
    }

    fn reg(v: &[(&str, bool)]) -> Vec<(String, bool)> {
        v.iter().map(|(a, b)| (a.to_string(), *b)).collect()
    }

    #[test]
    fn auto_mode() {
        let none = reg(&[]);
        assert_eq!(check(Binding::Off, 0, &none, None, "IV_HWADDR"), DeviceVerdict::Allowed);
        assert_eq!(
            check(Binding::Auto, 1, &none, Some("AA-BB-CC-DD-EE-FF"), "IV_HWADDR"),
            DeviceVerdict::Register("aa:bb:cc:dd:ee:ff".into())
        );
        let one = reg(&[("aa:bb:cc:dd:ee:ff", true)]);
        assert_eq!(
            check(Binding::Auto, 1, &one, Some("AABBCCDDEEFF"), "IV_HWADDR"),
            DeviceVerdict::Known("aa:bb:cc:dd:ee:ff".into())
        );
        assert!(matches!(
            check(Binding::Auto, 1, &one, Some("11:22:33:44:55:66"), "IV_HWADDR"),
            DeviceVerdict::Refused { deny: Deny::DeviceLimit { max: 1, .. }, pending: None }
        ));
        assert!(matches!(
            check(Binding::Auto, 2, &one, Some("11:22:33:44:55:66"), "IV_HWADDR"),
            DeviceVerdict::Register(_)
        ));
    }

    #[test]
    fn manual_mode_and_missing_ids() {
        let none = reg(&[]);
        assert_eq!(
            check(Binding::Manual, 5, &none, Some("aa:bb:cc:dd:ee:ff"), "IV_HWADDR"),
            DeviceVerdict::Refused {
                deny: Deny::DeviceNotApproved { id: "aa:bb:cc:dd:ee:ff".into() },
                pending: Some("aa:bb:cc:dd:ee:ff".into())
            }
        );
        let pending = reg(&[("aa:bb:cc:dd:ee:ff", false)]);
        assert!(matches!(
            check(Binding::Manual, 5, &pending, Some("aa:bb:cc:dd:ee:ff"), "IV_HWADDR"),
            DeviceVerdict::Refused { pending: None, .. }
        ));
        let ok = reg(&[("aa:bb:cc:dd:ee:ff", true)]);
        assert_eq!(
            check(Binding::Manual, 5, &ok, Some("aa:bb:cc:dd:ee:ff"), "IV_HWADDR"),
            DeviceVerdict::Known("aa:bb:cc:dd:ee:ff".into())
        );
        match check(Binding::Auto, 1, &none, None, "IV_HWADDR") {
            DeviceVerdict::Refused { deny, .. } => {
                assert!(deny.log_reason().contains("push-peer-info"), "{}", deny.log_reason())
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn versions() {
        assert!(version_lt("2.5.9", "2.6"));
        assert!(!version_lt("2.6.0", "2.6"));
        assert!(!version_lt("2.10.1", "2.9"));
        assert!(!version_lt("2.6.14_git", "2.6.14"));
        assert!(version_lt("", "1"));
        assert!(version_lt("garbage", "1"));
    }

    #[test]
    fn client_rules() {
        let rules = ClientRules {
            platforms: vec!["win".into(), "mac".into()],
            min_version: Some("2.6".into()),
            require: [("UV_APPVER_AGENT".to_string(), "1.4".to_string())].into_iter().collect(),
        };
        let peer = |plat: &'static str, ver: &'static str, agent: Option<&'static str>| {
            move |n: &str| match n {
                "IV_PLAT" => Some(plat.to_string()),
                "IV_VER" => Some(ver.to_string()),
                "UV_APPVER_AGENT" => agent.map(str::to_string),
                _ => None,
            }
        };
        assert_eq!(client_check(&rules, &peer("win", "2.6.14", Some("1.4.2"))), None);
        let d = client_check(&rules, &peer("linux", "2.6.14", Some("1.4"))).unwrap();
        assert!(d.client_reason().contains("platform (linux) is not allowed"), "{}", d.client_reason());
        let d = client_check(&rules, &peer("mac", "2.5.1", Some("1.4"))).unwrap();
        assert!(d.client_reason().contains("update to 2.6"), "{}", d.client_reason());
        let d = client_check(&rules, &peer("mac", "2.6.1", None)).unwrap();
        assert!(d.client_reason().contains("UV_APPVER_AGENT"), "{}", d.client_reason());
        let d = client_check(&rules, &peer("mac", "2.6.1", Some("1.3.9"))).unwrap();
        assert!(d.client_reason().contains("update it to 1.4"), "{}", d.client_reason());
        assert_eq!(client_check(&ClientRules::default(), &|_| None), None);
    }
}

/// A registered device as `device list` reports it.
#[derive(Clone, Debug)]
pub struct DeviceRow {
    pub hwaddr: String,
    pub approved: bool,
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    pub created_at: i64,
}

/// User `user_id`'s devices, oldest first.
pub fn list(db: &Db, user_id: i64) -> anyhow::Result<Vec<DeviceRow>> {
    let mut st = db.prepare(
        "SELECT hwaddr, approved, first_seen, last_seen, created_at FROM devices WHERE user_id = ?1 ORDER BY created_at, id",
    )?;
    let rows = st
        .query_map([user_id], |r| {
            Ok(DeviceRow {
                hwaddr: r.get(0)?,
                approved: r.get(1)?,
                first_seen: r.get(2)?,
                last_seen: r.get(3)?,
                created_at: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The user's own binding mode, if it has one (else the config's).
pub fn user_binding(db: &Db, user_id: i64) -> anyhow::Result<Option<Binding>> {
    let own: Option<String> =
        db.query_row("SELECT device_binding FROM users WHERE id = ?1", [user_id], |r| r.get(0))?;
    Ok(own.as_deref().and_then(Binding::parse))
}

/// Approve `hwaddr` (normalized) for the user, registering it if new.
pub fn approve(db: &Db, user_id: i64, hwaddr: &str, now: i64) -> anyhow::Result<()> {
    db.execute(
        "INSERT INTO devices (user_id, hwaddr, approved, created_at) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (user_id, hwaddr) DO UPDATE SET approved = 1",
        params![user_id, hwaddr, now],
    )?;
    Ok(())
}

/// Forget one device; false when the user had none by that id.
pub fn remove(db: &Db, user_id: i64, hwaddr: &str) -> anyhow::Result<bool> {
    Ok(db.execute("DELETE FROM devices WHERE user_id = ?1 AND hwaddr = ?2", params![user_id, hwaddr])? > 0)
}

/// Forget every device of the user; returns how many.
pub fn remove_all(db: &Db, user_id: i64) -> anyhow::Result<usize> {
    Ok(db.execute("DELETE FROM devices WHERE user_id = ?1", [user_id])?)
}
