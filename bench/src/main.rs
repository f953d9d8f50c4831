//! tollgate-bench: times hook processes the way OpenVPN experiences them,
//! from fork/exec to reaping the exit status, and reads each child's peak
//! memory from wait4. Run through bench/run.sh, which documents the setup.
//!
//!   tollgate-bench populate DB USERS SESSIONS [cheap]  fill a fresh database
//!                                                  (cheap: argon2 at minimum cost)
//!   tollgate-bench add-sessions DB N               append N closed sessions
//!   tollgate-bench hooks DIR CONFIG RUNS           p50/p99 of every hook
//!   tollgate-bench auth CONFIG RUNS                auth-verify inline only
//!   tollgate-bench python DIR CONFIG RUNS PYHOOK   the Python reference hook
//!   tollgate-bench decide DIR CONFIG USER PW RUNS  deferred auth of one user:
//!                                                  what OpenVPN waits for, and
//!                                                  the time to the decision

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tollgate_core::config::Argon2Params;
use tollgate_core::db::params;
use tollgate_core::{password, Config, Store};

fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| a.get(i).cloned().context("missing argument (see the source header)");
    match a.first().map(String::as_str) {
        Some("populate") => populate(
            Path::new(&arg(1)?),
            arg(2)?.parse()?,
            arg(3)?.parse()?,
            a.get(4).map(String::as_str) == Some("cheap"),
        ),
        Some("add-sessions") => add_sessions(Path::new(&arg(1)?), arg(2)?.parse()?),
        Some("hooks") => hooks(Path::new(&arg(1)?), Path::new(&arg(2)?), arg(3)?.parse()?),
        Some("auth") => auth_only(Path::new(&arg(1)?), Path::new(&arg(2)?), arg(3)?.parse()?),
        Some("python") => python(Path::new(&arg(1)?), Path::new(&arg(2)?), arg(3)?.parse()?, Path::new(&arg(4)?)),
        Some("decide") => decide(Path::new(&arg(1)?), Path::new(&arg(2)?), &arg(3)?, &arg(4)?, arg(5)?.parse()?),
        Some("sso") => {
            let hinted = a.get(7).is_some_and(|h| h == "--hinted");
            sso(Path::new(&arg(1)?), Path::new(&arg(2)?), &arg(3)?, &arg(4)?, &arg(5)?, arg(6)?.parse()?, hinted)
        }
        _ => bail!("usage: tollgate-bench populate|add-sessions|hooks|auth|python|decide|sso … (see bench/run.sh)"),
    }
}

fn cfg_at(db: &Path) -> Config {
    Config { database: tollgate_core::config::Database::Sqlite(db.to_path_buf()), ..Config::default() }
}

/// USERS users (user0 … ; one shared argon2id hash at the default cost,
/// password "bench password"), one server nl-1 granted to all, one plan
/// with a quota and a connection limit, and SESSIONS closed sessions spread
/// over the users and the last year.
fn populate(db: &Path, users: i64, sessions: i64, cheap: bool) -> Result<()> {
    let _ = std::fs::remove_file(db);
    let (mut store, _) = Store::init(&cfg_at(db))?;
    let cost = if cheap { Argon2Params { m_cost_kib: 8, t_cost: 1, p_cost: 1 } } else { Argon2Params::default() };
    let hash = password::hash("bench password", cost)?;
    let tx = store.write_tx()?;
    tx.execute(
        "INSERT INTO servers (name, host, ca_pem, tls_mode, tls_key, created_at) VALUES ('nl-1', 'h', 'x', 'tls-crypt', 'k', 0)",
        [],
    )?;
    tx.execute(
        "INSERT INTO plans (name, quota_bytes, period, max_connections, created_at) VALUES ('std', 53687091200, 'month', 5, 0)",
        [],
    )?;
    {
        let mut st = tx.prepare(
            "INSERT INTO users (name, password_hash, plan_id, plan_since, all_servers, created_at, updated_at)
             VALUES (?1, ?2, 1, 0, 1, 0, 0)",
        )?;
        for i in 0..users {
            st.execute(params![format!("user{i}"), hash])?;
        }
    }
    tx.commit()?;
    add_sessions(db, sessions)
}

fn add_sessions(db: &Path, n: i64) -> Result<()> {
    let mut store = Store::open_admin(&cfg_at(db))?;
    let users: i64 = store.conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?;
    let now = tollgate_core::units::now();
    let mut done = 0;
    while done < n {
        let tx = store.write_tx()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO sessions (user_id, server_id, connected_at, closed_at, real_ip, real_port, bytes_in, bytes_out, charged_in, charged_out, close_reason)
                 VALUES (?1, 1, ?2, ?2 + 3600, '198.51.100.7', ?3, 1000000, 5000000, 1000000, 5000000, 'disconnect')",
            )?;
            for i in done..(done + 200_000).min(n) {
                let t = now - 366 * 86400 + (i * 7919) % (365 * 86400);
                st.execute(params![1 + (i * 31) % users.max(1), t, 1024 + i % 60000])?;
            }
        }
        tx.commit()?;
        done = (done + 200_000).min(n);
    }
    Ok(())
}

/// One child, timed from spawn to reap; returns (wall time, peak RSS KiB, exit code).
fn timed(cmd: &mut Command) -> Result<(Duration, i64, i32)> {
    // Hook log lines would drown the figures; OpenVPN gets them in its log.
    // (TG_BENCH_STDERR=FILE keeps them, to see why a run failed.)
    match std::env::var_os("TG_BENCH_STDERR") {
        Some(f) => cmd.stderr(std::fs::OpenOptions::new().create(true).append(true).open(f)?),
        None => cmd.stderr(std::process::Stdio::null()),
    };
    let t = Instant::now();
    let child = cmd.spawn()?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 on our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let d = t.elapsed();
    if pid < 0 {
        bail!("wait4 failed");
    }
    Ok((d, ru.ru_maxrss, libc::WEXITSTATUS(status)))
}

struct Stats {
    p50: f64,
    p99: f64,
    max: f64,
    rss: i64,
}

fn stats(mut v: Vec<Duration>, rss: i64) -> Stats {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(v[((v.len() as f64 - 1.0) * q).round() as usize]);
    Stats { p50: at(0.5), p99: at(0.99), max: ms(*v.last().unwrap()), rss }
}

fn print(name: &str, s: &Stats) {
    println!(
        "{name:<34} p50 {:>8.3} ms   p99 {:>8.3} ms   max {:>8.3} ms   peak RSS {:>6} KiB",
        s.p50, s.p99, s.max, s.rss
    );
}

fn creds_file(dir: &Path, user: &str, pw: &str) -> Result<PathBuf> {
    let p = dir.join(format!("creds-{user}"));
    std::fs::write(&p, format!("{user}\n{pw}\n"))?;
    Ok(p)
}

fn auth_cmd(bin: &Path, config: &Path, creds: &Path, ctl: Option<&Path>, reason: &Path) -> Command {
    let mut c = Command::new(bin.join("auth-verify"));
    c.env_clear()
        .env("untrusted_ip", "192.0.2.2")
        .env("untrusted_port", "40000")
        .env("auth_failed_reason_file", reason)
        .arg("--config")
        .arg(config)
        .arg(creds);
    if let Some(ctl) = ctl {
        c.env("auth_control_file", ctl);
    }
    c
}

/// Wait until a deferred answer is in (not timed: OpenVPN is free meanwhile).
fn await_answer(ctl: &Path) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if std::fs::read(ctl).map(|b| !b.is_empty()).unwrap_or(false) {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn hooks(bin: &Path, config: &Path, runs: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("tg-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let reason = dir.join("reason");
    let cfg = Config::from_file(config)?;
    let users: i64 = Store::open_admin(&cfg)?.conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?;
    let user = |i: usize| format!("user{}", (i as i64 * 7919) % users);

    let (mut inline, mut deferred, mut cc, mut cc_def, mut cd) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut deferred_lookup, mut floor) = (vec![], vec![]);
    let (mut r_inline, mut r_def, mut r_cc, mut r_cc_def, mut r_cd) = (0, 0, 0, 0, 0);
    for i in 0..runs {
        let u = user(i);
        let creds = creds_file(&dir, &u, "bench password")?;
        // inline: what OpenVPN waits for without deferral.
        let (d, rss, code) = timed(&mut auth_cmd(bin, config, &creds, None, &reason))?;
        if code != 0 {
            bail!("inline auth of {u} failed with {code}: {}", std::fs::read_to_string(&reason).unwrap_or_default());
        }
        inline.push(d);
        r_inline = r_inline.max(rss);
        // deferred: OpenVPN waits only until exit 2. A fresh control file
        // per attempt, as OpenVPN makes: the previous attempt's supervisor
        // may still be checking its own.
        // As installed (auth-gen-token: OpenVPN sets session_state), and
        // without auth-gen-token, where a password renegotiation is told
        // from a login by a look-up of open sessions before deferring.
        for token in [true, false] {
            let ctl = dir.join(format!("control-{i}-{token}"));
            std::fs::write(&ctl, b"")?;
            let mut c = auth_cmd(bin, config, &creds, Some(&ctl), &reason);
            if token {
                c.env("session_state", "Initial");
            }
            let (d, rss, code) = timed(&mut c)?;
            if code != 2 {
                bail!("deferred auth returned {code}");
            }
            if token { &mut deferred } else { &mut deferred_lookup }.push(d);
            r_def = r_def.max(rss);
            await_answer(&ctl);
            if std::fs::read(&ctl)? != b"1" {
                bail!("deferred auth of {u} was refused");
            }
        }
        // What no hook can go below: OpenVPN's fork and exec of /bin/true.
        let (d, _, _) = timed(Command::new("/bin/true").env_clear().env("username", &u))?;
        floor.push(d);
        // client-connect (inline, then deferred: OpenVPN waits only until
        // it exits) and client-disconnect of that user, on two tunnels.
        for (k, defer) in [(0, false), (1, true)] {
            let ccfile = dir.join("cc");
            let port = (20000 + (2 * i + k) % 40000).to_string();
            let t_unix = (1_800_000_000 + 2 * i + k).to_string();
            let base = |c: &mut Command| {
                c.env_clear()
                    .env("username", &u)
                    .env("trusted_ip", "192.0.2.2")
                    .env("trusted_port", &port)
                    .env("time_unix", &t_unix)
                    .env("ifconfig_pool_remote_ip", "10.8.0.2")
                    .env("IV_PLAT", "linux")
                    .arg("--config")
                    .arg(config);
            };
            let mut c = Command::new(bin.join("client-connect"));
            base(&mut c);
            c.arg(&ccfile);
            let answer = dir.join(format!("ccr-{i}"));
            if defer {
                std::fs::write(&answer, b"")?;
                c.env("client_connect_deferred_file", &answer);
            }
            let (d, rss, code) = timed(&mut c)?;
            if code != 0 {
                bail!("client-connect failed");
            }
            if defer {
                // Not timed: OpenVPN is free meanwhile.
                let t = Instant::now();
                while std::fs::read(&answer)? == b"2" && t.elapsed() < Duration::from_secs(30) {
                    std::thread::sleep(Duration::from_micros(200));
                }
                if std::fs::read(&answer)? != b"1" {
                    bail!("deferred client-connect of {u} was refused");
                }
                cc_def.push(d);
                r_cc_def = r_cc_def.max(rss);
            } else {
                cc.push(d);
                r_cc = r_cc.max(rss);
            }
            let mut c = Command::new(bin.join("client-disconnect"));
            base(&mut c);
            c.env("bytes_received", "123456").env("bytes_sent", "654321").env("time_duration", "60");
            let (d, rss, code) = timed(&mut c)?;
            if code != 0 {
                bail!("client-disconnect failed");
            }
            cd.push(d);
            r_cd = r_cd.max(rss);
        }
    }
    print("/bin/true (the floor)", &stats(floor, 0));
    print("auth-verify, deferred (exit 2)", &stats(deferred, r_def));
    print("  without auth-gen-token", &stats(deferred_lookup, r_def));
    print("auth-verify, inline (argon2 incl.)", &stats(inline, r_inline));
    print("client-connect, deferred (exit)", &stats(cc_def, r_cc_def));
    print("client-connect, inline", &stats(cc, r_cc));
    print("client-disconnect", &stats(cd, r_cd));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// auth-verify inline, for the scaling series (run with cheap argon2
/// parameters so the database part is what is measured).
fn auth_only(config: &Path, bin: &Path, runs: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("tg-bench-a-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let reason = dir.join("reason");
    let mut v = vec![];
    let mut rss = 0;
    for i in 0..runs {
        let u = format!("user{}", (i * 7919) % 100_000);
        let creds = creds_file(&dir, &u, "wrong password")?;
        let (d, r, _) = timed(&mut auth_cmd(bin, config, &creds, None, &reason))?;
        v.push(d);
        rss = rss.max(r);
    }
    print("auth-verify inline", &stats(v, rss));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn python(_bin: &Path, config: &Path, runs: usize, pyhook: &Path) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("tg-bench-p-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cfg = Config::from_file(config)?;
    let mut v = vec![];
    let mut rss = 0;
    for i in 0..runs {
        let u = format!("user{}", (i * 7919) % 100_000);
        let creds = creds_file(&dir, &u, "bench password")?;
        let mut c = Command::new("/usr/bin/python3");
        c.env_clear()
            .env("TOLLGATE_BENCH_DB", cfg.database.sqlite_path().expect("the python hook reads SQLite"))
            .arg(pyhook)
            .arg(&creds);
        let (d, r, code) = timed(&mut c)?;
        if code != 0 {
            bail!("python hook refused {u} ({code})");
        }
        v.push(d);
        rss = rss.max(r);
    }
    print("python reference hook (inline)", &stats(v, rss));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Deferred auth of one user, RUNS times: the hook's exit 2 (what OpenVPN
/// waits for) and the answer in the control file (when the client learns
/// the decision, less OpenVPN's polling), both from the spawn.
fn decide(bin: &Path, config: &Path, user: &str, pw: &str, runs: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("tg-bench-d-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let reason = dir.join("reason");
    let creds = creds_file(&dir, user, pw)?;
    let (mut wait, mut decided, mut rss) = (vec![], vec![], 0);
    for i in 0..runs {
        // A fresh control file per attempt, as OpenVPN makes: the previous
        // attempt's supervisor may still be checking its own.
        let ctl = dir.join(format!("control-{i}"));
        std::fs::write(&ctl, b"")?;
        let t = Instant::now();
        let (d, r, code) = timed(&mut auth_cmd(bin, config, &creds, Some(&ctl), &reason))?;
        if code != 2 {
            bail!("deferred auth of {user} returned {code}");
        }
        await_answer(&ctl);
        decided.push(t.elapsed());
        if std::fs::read(&ctl)? != b"1" {
            bail!("{user} was refused: {}", std::fs::read_to_string(&reason).unwrap_or_default());
        }
        wait.push(d);
        rss = rss.max(r);
    }
    print(&format!("{user}: OpenVPN waits"), &stats(wait, rss));
    print(&format!("{user}: decision"), &stats(decided, 0));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// What OpenVPN waits for at a single sign-on login (auth-verify writes the
/// login link and defers) beside a local user's deferred login, alternated
/// attempt by attempt. Each SSO login is then answered (refused) through
/// the database as tollgate web would, so that its worker ends at once.
/// `hinted`: the SSO client sends gen-ovpn's `UV_TOLLGATE_SSO 1`.
fn sso(bin: &Path, config: &Path, local: &str, pw: &str, sso_user: &str, runs: usize, hinted: bool) -> Result<()> {
    let cfg = Config::from_file(config)?;
    let dir = std::env::temp_dir().join(format!("tg-bench-s-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let reason = dir.join("reason");
    let (local_creds, sso_creds) = (creds_file(&dir, local, pw)?, creds_file(&dir, sso_user, "-")?);
    let (mut wait_local, mut wait_sso, mut rss) = (vec![], vec![], 0);
    for i in 0..runs {
        let ctl = dir.join(format!("control-l{i}"));
        std::fs::write(&ctl, b"")?;
        let (d, r, code) = timed(&mut auth_cmd(bin, config, &local_creds, Some(&ctl), &reason))?;
        if code != 2 {
            bail!("deferred auth of {local} returned {code}");
        }
        await_answer(&ctl);
        wait_local.push(d);
        rss = rss.max(r);
        let (ctl, pending) = (dir.join(format!("control-s{i}")), dir.join(format!("pending-{i}")));
        std::fs::write(&ctl, b"")?;
        std::fs::write(&pending, b"")?;
        let mut cmd = auth_cmd(bin, config, &sso_creds, Some(&ctl), &reason);
        cmd.env("IV_SSO", "openurl,webauth,crtext").env("auth_pending_file", &pending);
        if hinted {
            // What gen-ovpn writes into an oidc user's profile.
            cmd.env(tollgate_core::oidc::PROFILE_HINT, "1");
        }
        let (d, r, code) = timed(&mut cmd)?;
        if code != 2 {
            bail!("SSO login of {sso_user} returned {code}");
        }
        wait_sso.push(d);
        rss = rss.max(r);
        let text = std::fs::read_to_string(&pending)?;
        let Some(secret) = text.lines().nth(2).and_then(|l| l.rsplit_once("l=")).map(|(_, s)| s.to_string()) else {
            bail!("no login link in auth_pending_file: {text:?}");
        };
        let store = Store::open_hook(&cfg)?;
        let no = tollgate_core::directory::Answer::Reject { reason: "bench".into() };
        let t = Instant::now();
        while !tollgate_core::oidc::finish_link(&store, &secret, &no)? {
            if t.elapsed() > Duration::from_secs(5) {
                bail!("the SSO login was never recorded");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        await_answer(&ctl);
    }
    let (l, s) = (stats(wait_local, rss), stats(wait_sso, rss));
    print(&format!("{local}: OpenVPN waits (deferred)"), &l);
    print(&format!("{sso_user}: OpenVPN waits (SSO link)"), &s);
    println!("SSO / local deferred, p50: {:.2}", s.p50 / l.p50);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
