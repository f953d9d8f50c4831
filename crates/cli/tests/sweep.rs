//! `tollgate sweep` never does nothing quietly: what it could not do is its
//! error, after the disconnect spool is replayed.
mod common;
use common::{env, err, Env};
use tollgate_core::sessions::{spool, CloseRecord, SessionKey};
use tollgate_core::Config;

const AT: i64 = 1_700_000_000;

/// Alice has two open sessions on nl-1; the first one's disconnect record
/// waits in the spool (the database was busy when she left).
fn with_spooled_disconnect(name: &str) -> Env {
    let e = env(
        name,
        &format!(
            "INSERT INTO sessions (user_id, server_id, connected_at, real_ip, real_port) VALUES
               (1, 1, {AT}, '192.0.2.2', 5000), (1, 1, {AT}, '192.0.2.3', 6000);"
        ),
    );
    let key = SessionKey {
        username: "alice".into(),
        server: "nl-1".into(),
        connected_at: AT,
        real_ip: "192.0.2.2".into(),
        real_port: 5000,
        token_session: None,
    };
    let rec = CloseRecord { key, bytes_in: 700, bytes_out: 300, closed_at: AT + 60, reason: "disconnect".into() };
    spool(&Config::from_file(&e.config).unwrap().spool_dir(), &rec, true).unwrap();
    e
}

fn add_config(e: &Env, lines: &str) {
    let mut text = std::fs::read_to_string(&e.config).unwrap();
    text.push_str(lines);
    std::fs::write(&e.config, text).unwrap();
}

#[test]
fn without_a_live_list_the_sweep_says_so_after_replaying_the_spool() {
    let e = with_spooled_disconnect("sweepnone");
    let o = e.tollgate(&["sweep"], "");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("neither a management interface nor a status file"), "{}", err(&o));
    assert_eq!(err(&o).lines().count(), 1, "{}", err(&o));
    assert_eq!(e.query("SELECT bytes_in + bytes_out FROM sessions WHERE id = 1"), "Integer(1000)");
    assert_eq!(e.query("SELECT ok FROM sweeps WHERE server = 'nl-1'"), "Integer(0)");
}

#[test]
fn a_management_interface_that_is_down_falls_back_on_the_status_file() {
    let e = with_spooled_disconnect("sweepdown");
    let status = e.dir.join("status.log");
    std::fs::write(
        &status,
        format!(
            "TITLE,OpenVPN 2.6.14\nTIME,now,{now}\n\
             HEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,Virtual IPv6 Address,Bytes Received,Bytes Sent,Connected Since,Connected Since (time_t),Username,Client ID,Peer ID,Data Channel Cipher\n\
             CLIENT_LIST,alice,192.0.2.3:6000,10.8.0.6,,4000,1000,x,{AT},alice,7,0,AES-256-GCM\nEND\n",
            now = AT + 120
        ),
    )
    .unwrap();
    add_config(
        &e,
        &format!(
            "management = \"unix:{}\"\nstatus_file = \"{}\"\n",
            e.dir.join("gone.sock").display(),
            status.display()
        ),
    );
    let o = e.tollgate(&["sweep"], "");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let (out, stderr) = (String::from_utf8_lossy(&o.stdout), err(&o));
    assert!(stderr.contains("management interface unreachable") && stderr.contains("gone.sock"), "{stderr}");
    assert!(stderr.contains("read the status file"), "{stderr}");
    // The spool first, then the status file's figures.
    assert!(out.contains("applied 1 spooled disconnect record"), "{out}");
    assert!(out.contains("1 live client(s); charged 5 KB"), "{out}");
    assert_eq!(e.query("SELECT bytes_in + bytes_out FROM sessions WHERE id = 2"), "Integer(5000)");
    assert_eq!(e.query("SELECT count(*) FROM sessions WHERE closed_at IS NULL"), "Integer(1)");
}

/// A client that sent no username has no name in the status list (no
/// Username, no common name): time and address find its session, whose
/// user is charged and, when barred, named for the cut. One still signing
/// in has no session, and its certificate's common name is no account:
/// nobody is checked for it.
#[test]
fn a_client_without_a_username_is_its_sessions_user() {
    let e = with_spooled_disconnect("sweepunnamed");
    let status = e.dir.join("status.log");
    std::fs::write(
        &status,
        format!(
            "TITLE\tOpenVPN 2.6.14\nTIME\tnow\t{now}\n\
             HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher\n\
             CLIENT_LIST\t\t192.0.2.3:6000\t10.8.0.6\t\t4000\t1000\tx\t{AT}\tUNDEF\t7\t0\tAES-256-GCM\n\
             CLIENT_LIST\tUNDEF\t192.0.2.9:7000\t\t\t10\t10\tx\t{AT}\tUNDEF\t8\t0\tAES-256-GCM\n\
             CLIENT_LIST\tlaptop-7\t192.0.2.8:7001\t\t\t10\t10\tx\t{AT}\tUNDEF\t9\t0\tAES-256-GCM\nEND\n",
            now = AT + 120
        ),
    )
    .unwrap();
    add_config(&e, &format!("status_file = \"{}\"\n", status.display()));
    let o = e.tollgate(&["user", "disable", "alice"], "");
    assert!(o.status.success(), "{}", err(&o));
    let o = e.tollgate(&["sweep"], "");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("2 live client(s); charged 5 KB"), "the one still in its handshake is not counted: {out}");
    assert_eq!(e.query("SELECT bytes_in + bytes_out FROM sessions WHERE id = 2"), "Integer(5000)");
    assert!(out.contains("would kill alice: account disabled"), "{out}");
    assert!(!out.contains("laptop-7"), "{out}");
}
