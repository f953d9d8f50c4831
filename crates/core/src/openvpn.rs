//! What OpenVPN hands a hook (argv, environment, files) and what a hook
//! hands back (files). See docs/design.md and shared notes for the facts.
//! Everything here treats its input as hostile: bounded reads, no panics.

use crate::policy::Deny;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `HOOK [--config PATH] [--server NAME] [OPENVPN_FILE]`: our flags come
/// first (from the server.conf command string), OpenVPN's argument last.
#[derive(Debug, Default, PartialEq)]
pub struct HookArgs {
    pub config: Option<PathBuf>,
    pub server: Option<String>,
    pub file: Option<PathBuf>,
}

pub fn parse_hook_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<HookArgs, String> {
    let mut out = HookArgs::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy().into_owned();
        let (flag, inline) = match s.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (s.clone(), None),
        };
        let mut value = |name: &str| -> Result<OsString, String> {
            match &inline {
                Some(v) => Ok(OsString::from(v)),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "--config" => out.config = Some(PathBuf::from(value("--config")?)),
            "--server" => out.server = Some(value("--server")?.to_string_lossy().into_owned()),
            f if f.starts_with("--") => return Err(format!("unknown option {f}")),
            _ => {
                if out.file.is_some() {
                    return Err("more than one file argument".into());
                }
                out.file = Some(PathBuf::from(a));
            }
        }
    }
    Ok(out)
}

/// A raw environment variable, if set.
pub fn env(name: &str) -> Option<Vec<u8>> {
    std::env::var_os(name).map(|v| v.as_bytes().to_vec())
}

/// A variable as text for logs and lookups (lossy, bounded).
pub fn env_str(name: &str) -> Option<String> {
    env(name).map(|v| crate::names::for_log(&String::from_utf8_lossy(&v)))
}

/// The client's peer info from the hook's environment: every IV_* and
/// UV_* variable, as text for logs and lookups.
pub fn peer_info() -> std::collections::BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("IV_") || k.starts_with("UV_"))
        .filter_map(|k| env_str(&k).map(|v| (k, v)))
        .collect()
}

pub struct Credentials {
    pub username: Vec<u8>,
    pub password: Vec<u8>,
}

fn malformed(detail: impl Into<String>) -> Deny {
    Deny::Malformed { detail: detail.into() }
}

/// The most a credentials file can legitimately hold.
const MAX_CREDENTIALS_FILE: u64 = 4096;

/// `via-file`: first line username, second line password. Read at once:
/// OpenVPN deletes the file when the hook exits.
pub fn read_via_file(path: &Path) -> Result<Credentials, Deny> {
    let f = std::fs::File::open(path)
        .map_err(|e| malformed(format!("cannot read credentials file {}: {e}", path.display())))?;
    let mut buf = Vec::new();
    f.take(MAX_CREDENTIALS_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| malformed(format!("cannot read credentials file {}: {e}", path.display())))?;
    parse_credentials(&buf)
}

/// Pure: the two lines of a via-file credentials file.
pub fn parse_credentials(buf: &[u8]) -> Result<Credentials, Deny> {
    if buf.len() as u64 > MAX_CREDENTIALS_FILE {
        return Err(malformed("credentials file larger than 4 KiB"));
    }
    if buf.is_empty() {
        return Err(malformed("empty credentials file"));
    }
    let Some(nl) = buf.iter().position(|b| *b == b'\n') else {
        return Err(malformed("credentials file has no password line"));
    };
    let username = buf[..nl].to_vec();
    let rest = &buf[nl + 1..];
    if rest.is_empty() {
        return Err(malformed("credentials file has no password line"));
    }
    let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    Ok(Credentials { username, password: rest[..end].to_vec() })
}

/// `via-env`: `username` and `password` (script-security 3).
pub fn read_via_env() -> Result<Credentials, Deny> {
    let username = env("username").ok_or_else(|| malformed("no username in the environment"))?;
    let password = env("password").ok_or_else(|| {
        malformed("no password in the environment (via-env needs script-security 3; via-file is preferred)")
    })?;
    Ok(Credentials { username, password })
}

/// The client's address for logs and bindings, if OpenVPN gave one.
pub fn client_ip() -> Option<String> {
    env_str("untrusted_ip").or_else(|| env_str("untrusted_ip6")).map(|ip| crate::names::canonical_ip(&ip))
}

/// A required numeric variable.
pub fn env_i64(name: &str) -> Result<i64, String> {
    let v = env(name).ok_or_else(|| format!("no {name} in the environment"))?;
    std::str::from_utf8(&v).ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| format!("{name} is not a number"))
}

/// The tunnel's identity in client-connect and client-disconnect.
pub fn session_key(server: &str) -> Result<crate::sessions::SessionKey, String> {
    // A client that sent no username (auth-user-pass-optional) is known by
    // OpenVPN's session id, which its sign-in recorded (`resolve_key`), and
    // by nothing else: never by the certificate's common name.
    let token_session = env_str("session_id").filter(|_| env("username").is_none_or(|u| u.is_empty()));
    let username = match &token_session {
        Some(_) => String::new(),
        None => {
            let u = env("username")
                .filter(|u| !u.is_empty())
                .or_else(|| env("common_name"))
                .ok_or("no username or common_name in the environment")?;
            let u = String::from_utf8(u).map_err(|_| "username is not UTF-8".to_string())?;
            crate::names::check_name("user", &u).map_err(|e| e.to_string())?;
            u
        }
    };
    let real_ip = env_str("trusted_ip")
        .or_else(|| env_str("trusted_ip6"))
        .map(|ip| crate::names::canonical_ip(&ip))
        .ok_or("no trusted_ip in the environment (not run by OpenVPN?)")?;
    Ok(crate::sessions::SessionKey {
        username,
        server: server.to_string(),
        connected_at: env_i64("time_unix")?,
        real_ip,
        real_port: env_i64("trusted_port").unwrap_or(0),
        token_session,
    })
}

/// Replace `path` atomically: write a temp file beside it, then rename.
/// OpenVPN polls these files; it must never see half a write. They live
/// for seconds and are read by a running OpenVPN, so no fsync: that would
/// only add disk latency to every hook. Use `write_durable` for data that
/// must survive a power loss.
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    write_file(path, content, false)
}

/// `write_atomic`, with the data flushed to disk before the rename.
pub fn write_durable(path: &Path, content: &[u8]) -> std::io::Result<()> {
    write_file(path, content, true)
}

/// Write `content` to a new file beside `path` and rename it over `path`.
/// The temporary name is unpredictable and created exclusively (O_EXCL,
/// which never follows a link), mode 0600: OpenVPN's tmp-dir may be shared
/// with local users, who must neither make a write fail by planting the
/// name first nor read what is written. The result keeps mode 0600, as
/// OpenVPN created its control and reason files.
fn write_file(path: &Path, content: &[u8], durable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    for _ in 0..8 {
        let tmp = dir.join(format!(".{name}.{}.tmp", random_hex(8)));
        let mut f = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let result = (|| {
            f.write_all(content)?;
            if durable {
                f.sync_data()?;
            }
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        return result;
    }
    Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free temporary file name after 8 tries"))
}

/// `n` random bytes as lowercase hex, from the operating system's generator.
pub fn random_hex(n: usize) -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    data_encoding::HEXLOWER.encode(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::tempdir::Dir;

    fn args(v: &[&str]) -> Result<HookArgs, String> {
        parse_hook_args(v.iter().map(OsString::from))
    }

    #[test]
    fn hook_args() {
        let a = args(&["--config", "/etc/t.toml", "--server=nl-1", "/tmp/openvpn_up_x"]).unwrap();
        assert_eq!(a.config, Some(PathBuf::from("/etc/t.toml")));
        assert_eq!(a.server.as_deref(), Some("nl-1"));
        assert_eq!(a.file, Some(PathBuf::from("/tmp/openvpn_up_x")));
        assert_eq!(args(&[]).unwrap(), HookArgs::default());
        assert!(args(&["--config"]).is_err());
        assert!(args(&["--bogus", "x"]).is_err());
        assert!(args(&["a", "b"]).is_err());
    }

    #[test]
    fn credentials_files() {
        let d = Dir::new();
        let p = d.path.join("c");
        let read = |content: &[u8]| {
            std::fs::write(&p, content).unwrap();
            read_via_file(&p)
        };
        let c = read(b"alice\nsecret pw\n").unwrap();
        assert_eq!((c.username.as_slice(), c.password.as_slice()), (&b"alice"[..], &b"secret pw"[..]));
        let c = read(b"alice\nsecret").unwrap();
        assert_eq!(c.password, b"secret");
        for bad in [&b""[..], b"alice", b"alice\n", &[b'x'; 5000]] {
            assert!(matches!(read(bad), Err(Deny::Malformed { .. })));
        }
        assert!(read_via_file(&d.path.join("missing")).is_err());
    }

    #[test]
    fn atomic_write_replaces() {
        let d = Dir::new();
        let p = d.path.join("auth_control");
        std::fs::write(&p, b"").unwrap();
        write_atomic(&p, b"1").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"1");
        assert_eq!(std::fs::read_dir(&d.path).unwrap().count(), 1, "no temp file left behind");
    }

    #[test]
    fn atomic_write_is_private_and_not_blocked_by_planted_names() {
        use std::os::unix::fs::PermissionsExt;
        let d = Dir::new();
        let p = d.path.join("auth_control");
        std::fs::write(&p, b"").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A local user who guesses a temporary name must not make the
        // answer fail (the old name was `.NAME.PID.tmp`).
        let planted = d.path.join(format!(".auth_control.{}.tmp", std::process::id()));
        std::fs::write(&planted, b"x").unwrap();
        // Whatever the umask, the answer stays private like OpenVPN's own file.
        let old = unsafe { libc::umask(0o022) };
        let r = write_atomic(&p, b"1");
        unsafe { libc::umask(old) };
        r.unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"1");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&planted).unwrap(), b"x", "a planted file is left alone");
    }
}
