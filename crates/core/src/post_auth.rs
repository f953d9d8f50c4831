//! The post-auth program: Access Server's post_auth, as a plain program.
//!
//! tollgate runs the configured argv (no shell, an empty environment but
//! PATH) after its own checks, writes one JSON object to its stdin and
//! reads one JSON object from its stdout. The program can veto, explain,
//! pick the session's group and address, save data for the next login and
//! ask a question; for users whose method is `program` it is the password
//! check itself. The contract is public: docs/admin-guide.md, "Post-auth
//! program".
//!
//! Fail closed: a program that cannot start, exits non-zero, dies, outlives
//! its timeout, or prints anything but the reply below (or more than
//! 64 KiB) is a deny, and nothing it said is applied.

use crate::config::PostAuth;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The most a program may print (and the most saved data a user may have).
pub const MAX_OUTPUT: usize = 64 * 1024;
/// The longest text the program may show the client.
const MAX_CLIENT_TEXT: usize = 200;

/// What the program is told. Access Server's names, so that admins can
/// port their scripts. Not `Debug`: it may carry the password.
#[derive(Serialize)]
pub struct Input {
    pub authcred: AuthCred,
    pub attributes: Attributes,
    pub authret: AuthRet,
    pub info: Info,
}

#[derive(Serialize)]
pub struct AuthCred {
    pub username: String,
    pub client_ip_addr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_hw_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_response: Option<String>,
    /// Only for users whose method is `program`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[derive(Serialize)]
pub struct Attributes {
    /// Every IV_* and UV_* variable the client sent.
    pub client_info: std::collections::BTreeMap<String, String>,
    pub vpn_auth: bool,
    pub reauth: bool,
}

#[derive(Serialize)]
pub struct AuthRet {
    pub status: Status,
    pub user: String,
    pub reason: String,
    pub group: Option<String>,
}

#[derive(Serialize)]
pub struct Info {
    pub auth_method: crate::method::AuthMethod,
    pub server: String,
    pub plan: Option<String>,
    pub groups: Vec<String>,
    pub saved: Map<String, Value>,
    /// For `ldap` users: the user's DN and directory groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ldap: Option<Value>,
    /// For `radius` users: the Access-Accept's attributes, name → values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub radius_reply: Option<Value>,
    /// For `oidc` users: the ID token's subject and groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    #[serde(rename = "SUCCEED")]
    Succeed,
    #[serde(rename = "FAIL")]
    Fail,
}

/// What the program answered, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: Status,
    /// For the admin's log, one line.
    pub reason: Option<String>,
    /// For the user when the login fails, one short line.
    pub client_reason: Option<String>,
    pub group: Option<String>,
    pub static_ip: Option<std::net::Ipv4Addr>,
    pub save: Map<String, Value>,
    pub challenge: Option<Question>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub text: String,
    pub echo: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReply {
    status: Status,
    reason: Option<String>,
    client_reason: Option<String>,
    group: Option<String>,
    static_ip: Option<String>,
    save: Option<Map<String, Value>>,
    challenge: Option<RawQuestion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuestion {
    text: String,
    #[serde(default)]
    echo: bool,
}

/// Pure: the program's stdout, checked against the contract. The error is
/// one line naming what is wrong.
pub fn parse_reply(out: &[u8]) -> Result<Reply, String> {
    if out.len() > MAX_OUTPUT {
        return Err(format!("output is over {} KiB", MAX_OUTPUT / 1024));
    }
    let raw: RawReply = serde_json::from_slice(out).map_err(|e| {
        let msg = e.to_string();
        format!("output is not the expected JSON object: {}", crate::names::one_line(&msg, 160))
    })?;
    let group = match raw.group {
        Some(g) => {
            crate::names::check_name("group", &g).map_err(|e| format!("bad group: {e}"))?;
            Some(g)
        }
        None => None,
    };
    let static_ip = match raw.static_ip {
        Some(ip) => Some(
            ip.parse()
                .map_err(|_| format!("static_ip {:?} is not an IPv4 address", crate::names::one_line(&ip, 60)))?,
        ),
        None => None,
    };
    let challenge = match raw.challenge {
        Some(q) => {
            if q.text.trim().is_empty()
                || q.text.chars().count() > MAX_CLIENT_TEXT
                || q.text.chars().any(char::is_control)
            {
                return Err(format!("challenge text must be 1 to {MAX_CLIENT_TEXT} characters on one line"));
            }
            Some(Question { text: q.text, echo: q.echo })
        }
        None => None,
    };
    Ok(Reply {
        status: raw.status,
        reason: raw.reason.map(|r| crate::names::one_line(&r, 300)),
        client_reason: raw
            .client_reason
            .map(|r| crate::names::one_line(&r, MAX_CLIENT_TEXT))
            .filter(|r| !r.trim().is_empty()),
        group,
        static_ip,
        save: raw.save.unwrap_or_default(),
        challenge,
    })
}

/// Pure: what the user has saved, with the program's `save` merged in. A
/// key set to null is removed. None when the result would be too large.
pub fn merge_saved(saved: &Map<String, Value>, save: &Map<String, Value>) -> Option<Map<String, Value>> {
    let mut out = saved.clone();
    for (k, v) in save {
        if v.is_null() {
            out.remove(k);
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    (serde_json::to_vec(&out).ok()?.len() <= MAX_OUTPUT).then_some(out)
}

/// The input as `tollgate test-auth` prints it: the password masked.
pub fn masked(input: &Input) -> Value {
    let mut v = serde_json::to_value(input).unwrap_or(Value::Null);
    if let Some(p) = v.pointer_mut("/authcred/password") {
        *p = Value::String("********".into());
    }
    v
}

/// When running as root (`tollgate test-auth`): refuse a program that a
/// user other than root could have changed: the file, or a directory
/// above it, not root's or writable by others (a root-owned sticky
/// directory such as /tmp excepted: nobody else can replace root's entries
/// in it). The hooks run as the OpenVPN user and need no such check.
pub fn check_trusted(prog: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let mut p = Some(prog);
    while let Some(cur) = p {
        let m = std::fs::symlink_metadata(cur)
            .map_err(|e| anyhow::anyhow!("cannot check post-auth program {}: {e}", prog.display()))?;
        let sticky_dir = m.is_dir() && m.mode() & 0o1000 != 0;
        let bad = if m.file_type().is_symlink() {
            Some("is a symbolic link")
        } else if m.uid() != 0 {
            Some("is not owned by root")
        } else if m.mode() & 0o022 != 0 && !sticky_dir {
            Some("is writable by group or others")
        } else {
            None
        };
        if let Some(why) = bad {
            anyhow::bail!(
                "refusing to run post-auth program {} as root: {} {why} (run test-auth as the OpenVPN user, or fix the permissions)",
                prog.display(),
                cur.display()
            );
        }
        p = cur.parent().filter(|q| !q.as_os_str().is_empty());
    }
    Ok(())
}

/// One run of the program: the reply, or a one-line reason to deny.
pub struct Run {
    pub result: Result<Reply, String>,
    /// What it printed (for test-auth), lossy UTF-8, bounded.
    pub stdout: String,
    pub elapsed: Duration,
}

/// Run the program with `input` on stdin, within the timeout.
pub fn run(pa: &PostAuth, input: &Input) -> Run {
    let start = Instant::now();
    let body = match serde_json::to_vec(input) {
        Ok(b) => b,
        Err(e) => {
            return Run {
                result: Err(format!("cannot encode input: {e}")),
                stdout: String::new(),
                elapsed: start.elapsed(),
            }
        }
    };
    let (result, out) = run_command(&pa.command, pa.timeout_secs, &body);
    let stdout = String::from_utf8_lossy(&out[..out.len().min(MAX_OUTPUT)]).into_owned();
    let result = result.and_then(|()| parse_reply(&out));
    Run { result, stdout, elapsed: start.elapsed() }
}

/// Spawn `command`, feed it `body`, collect its stdout (at most 64 KiB),
/// and kill it after `timeout_secs`. Returns what stdout held in any case.
/// Also runs the directory helper.
pub(crate) fn run_command(command: &[String], timeout_secs: u64, body: &[u8]) -> (Result<(), String>, Vec<u8>) {
    let Some(prog) = command.first() else { return (Err("no command".into()), Vec::new()) };
    let mut cmd = Command::new(prog);
    cmd.args(&command[1..])
        // The hook's environment holds OpenVPN's variables, and with
        // via-env the password: none of it reaches the program.
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a timeout kills whatever it started too.
        .process_group(0);
    // A program that exits without reading its input must not kill us
    // with SIGPIPE (the admin CLI restores the default disposition); the
    // child gets the default back from std before exec.
    // SAFETY: changing a signal disposition; restored below.
    let old_sigpipe = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let spawned = cmd.spawn();
    // SAFETY: restoring what was there.
    unsafe { libc::signal(libc::SIGPIPE, old_sigpipe) };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return (Err(format!("cannot run {prog}: {e}")), Vec::new()),
    };
    let pgid = child.id() as libc::pid_t;
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let mut stdin = child.stdin.take();
    let body = body.to_vec();
    // Written from a thread that is never waited for: a program that does
    // not read its input cannot block us, and one that exits early closes
    // the pipe (EPIPE, not SIGPIPE: the hooks ignore it, as Rust programs do).
    std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(&body);
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    // stdout: up to one byte past the limit, then the pipe is closed (the
    // program's next write fails: it said too much). stderr: read to the
    // end, so that a chatty program is not broken by it, keeping the tail.
    let reader = |which: usize, pipe: Option<Box<dyn Read + Send>>, keep_tail: bool, cap: usize| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let mut chunk = [0u8; 4096];
                loop {
                    match p.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if buf.len() > cap {
                        if !keep_tail {
                            buf.truncate(cap + 1);
                            break;
                        }
                        buf.drain(..buf.len() - cap);
                    }
                }
            }
            let _ = tx.send((which, buf));
        });
    };
    reader(0, child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>), false, MAX_OUTPUT);
    reader(1, child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>), true, 4096);
    // Wait for it to end without reaping it, so that its process group
    // cannot have been recycled when we kill it below.
    let ended = || -> std::io::Result<bool> {
        // SAFETY: siginfo_t is plain data; waitid fills it for our child.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: waitid on our own child, with a valid siginfo_t.
        if unsafe { libc::waitid(libc::P_PID, pgid as libc::id_t, &mut info, flags) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: si_pid is set (or left zero) by waitid.
        Ok(unsafe { info.si_pid() } != 0)
    };
    let outcome = loop {
        match ended() {
            Ok(true) => break Ok(()),
            Ok(false) if Instant::now() >= deadline => break Err(format!("timed out after {timeout_secs}s")),
            Ok(false) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break Err(format!("lost the program: {e}")),
        }
    };
    // Whatever it left behind in its group goes with it: children still
    // holding the pipes would otherwise keep us waiting.
    // SAFETY: signalling the process group we created, its leader unreaped.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let status = match (outcome, child.wait()) {
        (Err(e), _) => Err(e),
        (Ok(()), Ok(s)) => Ok(s),
        (Ok(()), Err(e)) => Err(format!("lost the program: {e}")),
    };
    // A process that left the group (setsid) may still hold the pipes:
    // wait a moment for them, never longer.
    let (mut out, mut err, mut open) = (Vec::new(), Vec::new(), 2);
    let grace = Instant::now() + Duration::from_secs(1);
    while open > 0 {
        match rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
            Ok((0, b)) => out = b,
            Ok((_, b)) => err = b,
            Err(_) => break,
        }
        open -= 1;
    }
    let status = match status {
        Ok(_) if open > 0 => {
            Err("its output stayed open after it ended (a process it started outside its process group holds it)"
                .to_string())
        }
        s => s,
    };
    let stderr_hint = || {
        let e = String::from_utf8_lossy(&err);
        let line = e.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("");
        if line.is_empty() {
            String::new()
        } else {
            format!(" (stderr: {})", crate::names::one_line(line, 200))
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let r = match status {
        // We stop reading past the limit, so the program may then die of
        // SIGPIPE: the size is the reason.
        _ if out.len() > MAX_OUTPUT => Err(format!("output is over {} KiB", MAX_OUTPUT / 1024)),
        Err(e) => Err(e),
        Ok(s) if s.success() => Ok(()),
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => Err(format!("exited with status {c}{}", stderr_hint())),
            (_, Some(sig)) => Err(format!("killed by signal {sig}{}", stderr_hint())),
            _ => Err("ended abnormally".to_string()),
        },
    };
    (r, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let r = parse_reply(br#"{"status":"SUCCEED"}"#).unwrap();
        assert_eq!((r.status, r.group, r.challenge), (Status::Succeed, None, None));
        let r = parse_reply(
            br#"{"status":"FAIL","reason":"line1\nline2","client_reason":"nope","group":"staff",
                 "static_ip":"10.8.0.9","save":{"k":1},"challenge":{"text":"PIN?","echo":true}}"#,
        )
        .unwrap();
        assert_eq!(r.reason.as_deref(), Some("line1 line2"));
        assert_eq!(r.client_reason.as_deref(), Some("nope"));
        assert_eq!(r.static_ip, Some("10.8.0.9".parse().unwrap()));
        assert_eq!(r.challenge, Some(Question { text: "PIN?".into(), echo: true }));
        assert_eq!(r.save.get("k"), Some(&Value::from(1)));
        for (bad, why) in [
            (&b""[..], "not the expected JSON"),
            (b"ok", "not the expected JSON"),
            (br#"{"status":"MAYBE"}"#, "not the expected JSON"),
            (br#"{"reason":"x"}"#, "not the expected JSON"),
            (br#"{"status":"SUCCEED","clinet_reason":"x"}"#, "not the expected JSON"),
            (br#"{"status":"SUCCEED","group":"a b"}"#, "bad group"),
            (br#"{"status":"SUCCEED","static_ip":"10.8.0"}"#, "not an IPv4"),
            (br#"{"status":"SUCCEED","challenge":{"text":""}}"#, "challenge text"),
            (br#"{"status":"SUCCEED","save":[1]}"#, "not the expected JSON"),
            (br#"[{"status":"SUCCEED"}]"#, "not the expected JSON"),
        ] {
            let e = parse_reply(bad).unwrap_err();
            assert!(e.contains(why) && !e.contains('\n'), "{:?}: {e}", String::from_utf8_lossy(bad));
        }
        let big = format!(r#"{{"status":"SUCCEED","reason":"{}"}}"#, "x".repeat(MAX_OUTPUT));
        assert!(parse_reply(big.as_bytes()).unwrap_err().contains("64 KiB"));
    }

    #[test]
    fn saved_data_merges_and_is_bounded() {
        let saved: Map<String, Value> = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let save: Map<String, Value> = serde_json::from_str(r#"{"b":null,"c":"x"}"#).unwrap();
        let m = merge_saved(&saved, &save).unwrap();
        assert_eq!(Value::Object(m), serde_json::json!({"a":1,"c":"x"}));
        let huge: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"blob": "y".repeat(MAX_OUTPUT)})).unwrap();
        assert!(merge_saved(&saved, &huge).is_none());
    }

    fn program(script: &str, timeout_secs: u64) -> PostAuth {
        PostAuth {
            command: vec!["/bin/sh".into(), "-c".into(), script.into()],
            timeout_secs,
            pending_text: String::new(),
        }
    }

    fn input() -> Input {
        Input {
            authcred: AuthCred {
                username: "alice".into(),
                client_ip_addr: "192.0.2.1".into(),
                client_hw_addr: None,
                static_response: None,
                password: Some("s3cret".into()),
            },
            attributes: Attributes { client_info: Default::default(), vpn_auth: true, reauth: false },
            authret: AuthRet { status: Status::Fail, user: "alice".into(), reason: String::new(), group: None },
            info: Info {
                auth_method: crate::method::AuthMethod::Program,
                server: "s".into(),
                plan: None,
                groups: vec![],
                saved: Map::new(),
                ldap: None,
                radius_reply: None,
                oidc: None,
            },
        }
    }

    #[test]
    fn runs_a_real_program_and_fails_closed() {
        // The program sees the input on stdin, and nothing in argv or env.
        let r = run(
            &program(
                r#"in=$(cat); case "$in" in *'"password":"s3cret"'*) ;; *) exit 3;; esac
                   [ -z "$password" ] && [ -z "$untrusted_ip" ] || exit 4
                   echo '{"status":"SUCCEED","group":"g"}'"#,
                5,
            ),
            &input(),
        );
        assert_eq!(r.result.unwrap().group.as_deref(), Some("g"));

        let cases = [
            ("echo oops >&2; exit 3", "exited with status 3 (stderr: oops)"),
            ("kill -SEGV $$", "killed by signal 11"),
            ("echo garbage", "not the expected JSON"),
            ("head -c 70000 /dev/zero | tr '\\0' x", "over 64 KiB"),
            ("sleep 30 & sleep 30", "timed out after 1s"),
            ("setsid sleep 5 & sleep 0.3; echo '{\"status\":\"SUCCEED\"}'", "output stayed open"),
            ("head -c 100000 /dev/zero >&2; echo last words >&2; exit 4", "exited with status 4 (stderr: last words)"),
        ];
        for (script, want) in cases {
            let start = Instant::now();
            let r = run(&program(script, 1), &input());
            let e = r.result.unwrap_err();
            assert!(e.contains(want), "{script}: {e}");
            assert!(start.elapsed() < Duration::from_secs(5), "{script}: took {:?}", start.elapsed());
        }
        let missing =
            PostAuth { command: vec!["/nonexistent/prog".into()], timeout_secs: 1, pending_text: String::new() };
        assert!(run(&missing, &input()).result.unwrap_err().contains("cannot run /nonexistent/prog"));
    }

    #[test]
    fn masks_the_password_for_display() {
        let v = masked(&input());
        assert_eq!(v["authcred"]["password"], "********");
        assert!(!v.to_string().contains("s3cret"));
    }
}
