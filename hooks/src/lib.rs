//! What the three hooks share: argv and config handling, and log lines.

use tollgate_core::openvpn::{self, HookArgs};
use tollgate_core::Config;

/// Parsed argv, loaded config and the server name, or a one-line reason.
pub struct Hook {
    pub args: HookArgs,
    pub cfg: Config,
    pub server: String,
}

impl Hook {
    pub fn load() -> Result<Hook, String> {
        let args =
            openvpn::parse_hook_args(std::env::args_os().skip(1)).map_err(|e| format!("bad hook arguments: {e}"))?;
        let cfg = Config::load(args.config.as_deref()).map_err(|e| format!("{e:#}"))?;
        let server = args
            .server
            .clone()
            .or_else(|| cfg.server.clone())
            .ok_or("no server name: set `server` in the config or pass --server")?;
        Ok(Hook { args, cfg, server })
    }
}

/// `--help` or `--version` as the only argument (an admin at a shell; OpenVPN
/// never passes them): print the usage or version on stdout and exit 0.
pub fn answer_help(usage: &str) {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("--help" | "-h"), None) => {
            print!("{usage}");
            std::process::exit(0);
        }
        (Some("--version" | "-V"), None) => {
            let name = std::env::args().next().unwrap_or_default();
            let name = name.rsplit('/').next().unwrap_or("tollgate hook");
            println!("{name} {}", env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        }
        _ => {}
    }
}

/// One line on stderr (OpenVPN's log), whatever the message looked like.
pub fn log_line(hook: &str, msg: &str) {
    let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("tollgate {hook}: {msg}");
}

/// Scheduling priority of deferred work (19 = lowest): during a login storm
/// it must not starve the process that forwards everyone's packets.
const WORKER_NICE: libc::c_int = 10;

/// What a deferred hook's two processes are called in `ps` (at most 15
/// bytes each, NUL-terminated).
pub struct Names {
    pub watch: &'static [u8],
    pub work: &'static [u8],
}

/// Answer OpenVPN later: fork a detached supervisor (its own session, so
/// nothing OpenVPN does to the hook's process group reaches it), which
/// forks the worker running `work` (true: it wrote OpenVPN's answer). If
/// the worker dies, fails or overruns `deadline` while `pending()` (OpenVPN
/// still waits: its file is there and holds no answer), the supervisor
/// calls `fallback` with the reason, so OpenVPN always gets an answer.
/// Once OpenVPN has read an answer it deletes the file: a worker that
/// answered is never second-guessed. Returns in the hook process, which
/// then tells OpenVPN "deferred" and exits at once; an error means no
/// supervisor could be started.
pub fn defer(
    names: Names,
    deadline: std::time::Duration,
    work: impl FnOnce() -> bool,
    pending: impl Fn() -> bool,
    fallback: impl FnOnce(String),
) -> Result<(), String> {
    if !fork_detached(names.watch)? {
        return Ok(());
    }
    // SAFETY: single-threaded; the worker runs this program's Rust code
    // and exits through process::exit.
    let worker = unsafe { libc::fork() };
    if worker <= 0 {
        // The worker, or no worker could be made: decide here rather than
        // leave OpenVPN waiting.
        if worker == 0 {
            set_name(names.work);
        }
        std::process::exit(if work() { 0 } else { 1 });
    }
    let start = std::time::Instant::now();
    let mut status = 0;
    let died = loop {
        // SAFETY: waitpid on our own child.
        let r = unsafe { libc::waitpid(worker, &mut status, libc::WNOHANG) };
        if r == worker {
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                // It answered.
                std::process::exit(0);
            }
            break if libc::WIFSIGNALED(status) {
                format!("worker killed by signal {}", libc::WTERMSIG(status))
            } else {
                format!("worker exited with {}", libc::WEXITSTATUS(status))
            };
        }
        if r < 0 {
            break "worker lost".to_string();
        }
        if start.elapsed() > deadline {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(worker, libc::SIGKILL);
                libc::waitpid(worker, &mut status, 0);
            }
            break format!("worker took longer than {}s", deadline.as_secs());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    if pending() {
        fallback(died);
    }
    std::process::exit(0);
}

/// Run `work` in a detached child that nobody waits for (its exit status
/// is its own business) and return in the hook at once. For work OpenVPN
/// needs no answer to, whose input is already safe on disk.
pub fn detach(name: &'static [u8], work: impl FnOnce() -> i32) -> Result<(), String> {
    if fork_detached(name)? {
        std::process::exit(work());
    }
    Ok(())
}

/// Fork a child in a session of its own (nothing OpenVPN does to the
/// hook's process group reaches it), at the workers' priority and named
/// `name`: true in the child, false in the hook.
fn fork_detached(name: &[u8]) -> Result<bool, String> {
    // SAFETY: the hook is single-threaded here; the child only runs Rust
    // code of this program and exits through process::exit.
    match unsafe { libc::fork() } {
        -1 => return Err(std::io::Error::last_os_error().to_string()),
        0 => {}
        _ => return Ok(false),
    }
    // SAFETY: plain syscalls on ourselves; its children inherit the priority.
    unsafe {
        libc::setsid();
        libc::setpriority(libc::PRIO_PROCESS, 0, WORKER_NICE);
    }
    set_name(name);
    Ok(true)
}

/// OpenVPN still waits for a deferred answer in `path`: the file is there
/// (it deletes it once it has read one) and holds none.
pub fn answer_pending(path: &std::path::Path) -> bool {
    std::fs::read(path).is_ok_and(|b| !matches!(b.first(), Some(b'0' | b'1')))
}

fn set_name(name: &[u8]) {
    debug_assert!(name.len() <= 16 && name.ends_with(b"\0"));
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}
