//! Deferred auth as OpenVPN 2.6 drives it: the hook gets auth_control_file,
//! exits 2, and the answer arrives in the control file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::Env;

fn setup(name: &str, toml: &str) -> Env {
    common::env("defer", name, toml, &common::alice())
}

struct Run {
    code: Option<i32>,
    waited: Duration,
    control: PathBuf,
    reason: PathBuf,
    log: PathBuf,
}

impl Env {
    /// Start the hook like OpenVPN does; returns once the hook process exited.
    fn start(&self, creds: &[u8], tag: &str) -> Run {
        self.start_with(creds, tag, &[])
    }

    /// `start`, with more variables in the hook's environment.
    fn start_with(&self, creds: &[u8], tag: &str, extra: &[(&str, &std::ffi::OsStr)]) -> Run {
        let f = self.dir.join(format!("creds-{tag}"));
        std::fs::write(&f, creds).unwrap();
        let control = self.dir.join(format!("acf-{tag}"));
        let reason = self.dir.join(format!("afr-{tag}"));
        let log = self.dir.join(format!("log-{tag}"));
        for f in [&control, &reason] {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::remove_file(f);
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(f).unwrap();
        }
        let t = Instant::now();
        // stderr to a file: the detached worker keeps writing to it after
        // the hook exits, as it would to OpenVPN's log.
        let status = Command::new(env!("CARGO_BIN_EXE_auth-verify"))
            .env_clear()
            .env("untrusted_ip", "192.0.2.2")
            .env("untrusted_port", "40000")
            .env("auth_control_file", &control)
            .env("auth_failed_reason_file", &reason)
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .arg("--config")
            .arg(&self.config)
            .arg(&f)
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .status()
            .unwrap();
        Run { code: status.code(), waited: t.elapsed(), control, reason, log }
    }
}

/// Poll the control file like OpenVPN: the first byte counts.
fn answer(p: &Path, within: Duration) -> Option<u8> {
    let t = Instant::now();
    while t.elapsed() < within {
        if let Some(b) = std::fs::read(p).ok().and_then(|v| v.first().copied()) {
            return Some(b);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn deferred_accept_and_deny() {
    let e = setup("basic", "[argon2]\nmemory_kib = 256\niterations = 1");
    let r = e.start(b"alice\ncorrect horse\n", "ok");
    assert_eq!(r.code, Some(2), "the hook defers");
    assert_eq!(answer(&r.control, Duration::from_secs(10)), Some(b'1'));
    assert!(std::fs::read_to_string(&r.log).unwrap().contains("ACCEPT user=alice ip=192.0.2.2 server=nl-1 (deferred)"));
    let r = e.start(b"alice\nwrong\n", "bad");
    assert_eq!(r.code, Some(2));
    assert_eq!(answer(&r.control, Duration::from_secs(10)), Some(b'0'));
    assert_eq!(std::fs::read_to_string(&r.reason).unwrap(), "invalid username or password");
    // OpenVPN made both files 0600; the answers replace them and stay so.
    use std::os::unix::fs::PermissionsExt;
    for f in [&r.control, &r.reason] {
        assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600, "{}", f.display());
    }
    // Malformed input is refused at once, without deferring.
    let r = e.start(b"al\x01ice\nx\n", "malformed");
    assert_eq!(r.code, Some(1));
    assert_eq!(std::fs::read(&r.control).unwrap(), b"");
}

#[test]
fn defer_never_decides_inline() {
    let e = setup("never", "defer = \"never\"\n[argon2]\nmemory_kib = 256\niterations = 1");
    let r = e.start(b"alice\ncorrect horse\n", "ok");
    assert_eq!(r.code, Some(0));
    assert_eq!(std::fs::read(&r.control).unwrap(), b"", "no control file answer when inline");
}

fn find_worker(control: &Path) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let needle = control.as_os_str().as_encoded_bytes();
        if comm.trim() == "tg-auth-work" && env.windows(needle.len()).any(|w| w == needle) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn killed_worker_still_yields_a_prompt_deny() {
    // A dummy hash at this cost takes seconds: the worker is busy when killed.
    let e = setup("kill", "[argon2]\nmemory_kib = 65536\niterations = 40");
    let r = e.start(b"mallory\nwhatever\n", "kill");
    assert_eq!(r.code, Some(2));
    assert!(r.waited < Duration::from_secs(1), "the hook must not do the slow part: {:?}", r.waited);
    let mut pid = None;
    let t = Instant::now();
    while pid.is_none() && t.elapsed() < Duration::from_secs(5) {
        pid = find_worker(&r.control);
    }
    let pid = pid.expect("worker process found");
    assert_eq!(std::fs::read(&r.control).unwrap(), b"", "still working");
    let killed_at = Instant::now();
    // SAFETY: killing a process this test started.
    unsafe { libc_kill(pid, 9) };
    assert_eq!(answer(&r.control, Duration::from_secs(5)), Some(b'0'), "a killed worker must yield a deny");
    assert!(killed_at.elapsed() < Duration::from_secs(2), "promptly, not at hand-window");
    assert_eq!(std::fs::read_to_string(&r.reason).unwrap(), "server error, try again later");
    let log = std::fs::read_to_string(&r.log).unwrap();
    assert!(log.contains("worker killed by signal 9"), "{log}");
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Without auth-gen-token a renegotiation sends the password again; it is
/// decided inline (deferred, OpenVPN would leave the tunnel's new key
/// unused until its next poll of the control file).
#[test]
fn password_renegotiation_of_an_open_tunnel_is_inline() {
    let e = setup("reneg", "[argon2]\nmemory_kib = 256\niterations = 1");
    let db = rusqlite::Connection::open(e.dir.join("t.db")).unwrap();
    db.execute(
        "INSERT INTO sessions (user_id, server_id, connected_at, real_ip, real_port) VALUES (1, 1, 1000, '192.0.2.2', 40000)",
        [],
    )
    .unwrap();
    let r = e.start(b"alice\ncorrect horse\n", "reneg");
    assert_eq!(r.code, Some(0), "decided inline: {}", std::fs::read_to_string(&r.log).unwrap());
    // A login from another port of that address is a new tunnel: deferred.
    db.execute("UPDATE sessions SET real_port = 40001", []).unwrap();
    let r = e.start(b"alice\ncorrect horse\n", "new");
    assert_eq!(r.code, Some(2));
    assert_eq!(answer(&r.control, Duration::from_secs(10)), Some(b'1'));
}

#[test]
fn a_slow_post_auth_program_is_announced_to_crtext_clients() {
    use std::os::unix::fs::PermissionsExt;
    let prog = std::env::temp_dir().join(format!("tg-defer-pending-{}.prog", std::process::id()));
    std::fs::write(&prog, "#!/bin/sh\ncat >/dev/null\nsleep 1\necho '{\"status\":\"SUCCEED\"}'\n").unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let toml = format!(
        "[argon2]\nmemory_kib = 256\niterations = 1\n[post_auth]\ncommand = [{:?}]\ntimeout = \"45s\"\npending_text = \"Approve the login on your phone\"",
        prog.display().to_string()
    );
    let e = setup("pending", &toml);
    let pending = e.dir.join("apf");
    for (tag, sso, want) in [
        ("crtext", "webauth,crtext", "55\ncrtext\nCR_TEXT::Approve the login on your phone\n"),
        ("nocrtext", "webauth", ""),
    ] {
        std::fs::write(&pending, "").unwrap();
        let r = e.start_with(
            b"alice\ncorrect horse\n",
            tag,
            &[("auth_pending_file", pending.as_os_str()), ("IV_SSO", std::ffi::OsStr::new(sso))],
        );
        assert_eq!(r.code, Some(2), "{}", std::fs::read_to_string(&r.log).unwrap_or_default());
        assert!(r.waited < Duration::from_millis(900), "the hook waited for the program: {:?}", r.waited);
        // The deadline OpenVPN is given covers the program's timeout.
        assert_eq!(std::fs::read_to_string(&pending).unwrap(), want, "IV_SSO={sso}");
        assert_eq!(
            answer(&r.control, Duration::from_secs(10)),
            Some(b'1'),
            "{}",
            std::fs::read_to_string(&r.log).unwrap()
        );
    }
    let _ = std::fs::remove_file(prog);
}
