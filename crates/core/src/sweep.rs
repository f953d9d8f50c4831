//! `tollgate sweep`, run by cron or a timer: charge live byte counts to open
//! sessions, cut clients that must go (the account's standing for a live
//! tunnel, `standing::check`), close sessions OpenVPN lost, replay the
//! disconnect spool, prune old events.

use crate::config::Config;
use crate::db::params;
use crate::mgmt::{LiveClient, Status};
use crate::policy::Deny;
use crate::sessions;
use crate::standing::{self, Checkpoint};
use crate::store::Store;
use anyhow::Result;
use serde::Serialize;
use std::collections::HashMap;

/// A session younger than this may not be in the live list yet (its
/// client-connect just ran); it is never taken for lost.
pub const LOST_GRACE_SECS: i64 = 5;

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub live_clients: usize,
    /// Status rows that could not be read; no session was closed as lost.
    pub unreadable_rows: usize,
    pub charged_sessions: usize,
    pub charged_bytes: i64,
    pub killed: Vec<Killed>,
    pub lost_closed: usize,
    pub spool_replayed: usize,
    pub events_pruned: usize,
    /// Single sign-on users the provider was asked about again
    /// (`tollgate sweep`'s recheck, before this run).
    pub sso_rechecked: usize,
}

#[derive(Debug, Serialize)]
pub struct Killed {
    pub user: String,
    pub reason: String,
    /// False when there was no management interface to kill through, or the kill failed.
    pub done: bool,
}

/// Cuts one live client (`client-kill` on the management interface).
pub type Kill<'a> = &'a mut dyn FnMut(&LiveClient) -> Result<()>;

/// An open session as the sweep matches it: id, user id, user name,
/// connected at, address, port, bytes charged in and out.
type OpenSession = (i64, i64, String, i64, String, i64, i64, i64);

/// One sweep for `server`. `live` is None when neither a management
/// interface nor a status file was given: then only the spool and the
/// pruning run. `kill` is None with a status file (nothing to kill through).
pub fn run(
    store: &mut Store,
    cfg: &Config,
    server: &str,
    live: Option<&Status>,
    mut kill: Option<Kill>,
    now: i64,
) -> Result<Report> {
    // Every live client would be refused for an unknown server: say so
    // instead of cutting them all.
    let known: bool = store.conn.query_row("SELECT count(*) FROM servers WHERE name = ?1", [server], |r| r.get(0))?;
    if !known {
        anyhow::bail!(
            "no such server: {server} (the name in tollgate server list, --server or `server` in the config)"
        );
    }
    let mut rep = Report { spool_replayed: sessions::replay_spool(store, &cfg.spool_dir(), 0)?, ..Default::default() };
    if let Some(status) = live {
        let live = status.clients.as_slice();
        rep.live_clients = live.len();
        rep.unreadable_rows = status.unreadable;
        // A live client is its session's when user, connect time (OpenVPN's
        // time_unix) and address agree, and the port too where the report
        // has one (IPv6 clients are printed without). A client that sent no
        // username is its signed-in user's: time and address say which.
        // Each live client is matched once, so two sessions can never be
        // charged its bytes.
        let mut by_key: HashMap<(i64, &str), Vec<usize>> = HashMap::new();
        for (i, c) in live.iter().enumerate() {
            by_key.entry((c.connected_at, c.real_ip.as_str())).or_default().push(i);
        }
        let mut taken = vec![false; live.len()];
        // Whose each live client is, where its session says.
        let mut owner: Vec<Option<String>> = vec![None; live.len()];
        let tx = store.write_tx()?;
        let open: Vec<OpenSession> = tx
            .prepare(
                "SELECT s.id, s.user_id, u.name, s.connected_at, coalesce(s.real_ip, ''), coalesce(s.real_port, 0),
                        s.charged_in, s.charged_out
                   FROM sessions s JOIN users u ON u.id = s.user_id JOIN servers v ON v.id = s.server_id
                  WHERE s.closed_at IS NULL AND v.name = ?1",
            )?
            .query_map([server], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
            })?
            .collect::<Result<_, _>>()?;
        for (id, user_id, name, at, ip, port, cin, cout) in open {
            // The user's own name first: a client without one takes a
            // session only if no named client of that user fits.
            let named = |i: usize| live[i].named && live[i].username == name;
            let fits = |i: usize, by: &dyn Fn(usize) -> bool| {
                !taken[i] && by(i) && live[i].real_port.is_none_or(|p| p == port)
            };
            let found = by_key.get(&(at, ip.as_str())).and_then(|idx| {
                let pick = |by: &dyn Fn(usize) -> bool| {
                    idx.iter()
                        .copied()
                        .find(|&i| fits(i, by) && live[i].real_port == Some(port))
                        .or_else(|| idx.iter().copied().find(|&i| fits(i, by)))
                };
                pick(&named).or_else(|| pick(&|i| !live[i].named))
            });
            if let Some(i) = found {
                taken[i] = true;
                owner[i] = Some(name.clone());
            }
            match found.map(|i| &live[i]) {
                Some(c) => {
                    let (a, b) = sessions::charge(&tx, id, user_id, (cin, cout), (c.bytes_in, c.bytes_out), now)?;
                    if a + b > 0 {
                        rep.charged_sessions += 1;
                        rep.charged_bytes += a + b;
                    }
                }
                None if at < now - LOST_GRACE_SECS && status.unreadable == 0 => {
                    tx.execute(
                        "UPDATE sessions SET closed_at = ?2, close_reason = 'lost' WHERE id = ?1",
                        params![id, now],
                    )?;
                    rep.lost_closed += 1;
                }
                None => {}
            }
        }
        tx.commit()?;
        for (c, owner) in live.iter().zip(&owner) {
            // Whose is a client with no session? Its username says; without
            // one (a sign-in still under way, or a tunnel that floated),
            // nobody: a common name is not an account.
            let name = match owner {
                Some(o) => o.as_str(),
                None if c.named => c.username.as_str(),
                None => continue,
            };
            let account = crate::auth::load_with(&store.conn, name, server, now, Default::default())?.facts;
            // A single sign-on user the provider no longer admits
            // (`tollgate sweep` asked it again just before).
            let refused = match &cfg.oidc {
                Some(_) => {
                    crate::oidc::refused(&store.conn, server, name)?.map(|detail| Deny::ProviderRefused { detail })
                }
                None => None,
            };
            let standing = standing::check(&account, Checkpoint::Live { connected_at: c.connected_at }, now);
            if let Some(d) = standing.or(refused) {
                let done = match kill.as_mut() {
                    Some(k) => k(c).is_ok(),
                    None => false,
                };
                rep.killed.push(Killed { user: name.to_string(), reason: d.log_reason(), done });
            }
        }
    }
    rep.events_pruned = store.conn.execute("DELETE FROM auth_events WHERE at < ?1", [now - cfg.retention_secs])?;
    store.conn.execute("DELETE FROM challenges WHERE expires_at < ?1", [now])?;
    store.conn.execute("DELETE FROM assignments WHERE expires_at < ?1", [now])?;
    crate::oidc::prune_grants(&store.conn, now, crate::oidc::GRANT_GRACE_SECS)?;
    crate::oidc::prune_tunnels(&store.conn, now, crate::oidc::GRANT_GRACE_SECS)?;
    // Address counters whose window and block are both over.
    store.conn.execute(
        "DELETE FROM source_failures WHERE coalesce(locked_until, 0) <= ?1 AND coalesce(failed_since, 0) <= ?2",
        params![now, now - cfg.lockout.window_secs],
    )?;
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    /// OpenVPN prints IPv6 clients without a port: such a client is still
    /// its session's (charged, not closed as lost), and one live client is
    /// never charged to two sessions.
    #[test]
    fn ipv6_clients_match_their_sessions() {
        use crate::mgmt::parse_status;
        use crate::store::tests::temp_config;
        let (_d, cfg) = temp_config();
        let (mut store, _) = Store::init(&cfg).unwrap();
        store
            .conn
            .execute_batch(&format!(
                "INSERT INTO servers (name, host, ca_pem, tls_mode, tls_key, created_at) VALUES ('nl-1', 'h', 'x', 'tls-crypt', 'k', 0);
                 INSERT INTO users (name, password_hash, created_at, updated_at) VALUES ('alice', 'x', 0, 0);
                 INSERT INTO sessions (user_id, server_id, connected_at, real_ip, real_port) VALUES
                   (1, 1, {at}, '2001:db8::2', 40000), (1, 1, {at}, '2001:db8::2', 40001), (1, 1, {at}, '192.0.2.2', 5000);",
                at = NOW - 60
            ))
            .unwrap();
        let status = format!(
            "HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tBytes Received\tBytes Sent\tConnected Since (time_t)\tUsername\tClient ID\n\
             CLIENT_LIST\talice\t2001:db8::2\t1000\t500\t{at}\talice\t3\n\
             CLIENT_LIST\talice\t192.0.2.2:5000\t10\t5\t{at}\talice\t4\n",
            at = NOW - 60
        );
        let live = parse_status(&status).unwrap();
        let rep = run(&mut store, &cfg, "nl-1", Some(&live), None, NOW).unwrap();
        assert_eq!((rep.charged_sessions, rep.charged_bytes), (2, 1515));
        // Two sessions from one IPv6 address and second, one live client:
        // one is charged, the other is not there any more.
        assert_eq!(rep.lost_closed, 1);
        let open: i64 =
            store.conn.query_row("SELECT count(*) FROM sessions WHERE closed_at IS NULL", (), |r| r.get(0)).unwrap();
        assert_eq!(open, 2);
    }

    /// The tunnels of a single sign-on user the provider refused are cut,
    /// with the provider's reason, IPv6 ones (no port in the report)
    /// included; another user's are not.
    #[test]
    fn a_tunnel_the_provider_refused_is_cut() {
        use crate::mgmt::parse_status;
        use crate::store::tests::temp_config;
        let (_d, mut cfg) = temp_config();
        cfg.oidc = Config::parse(
            "[oidc]\nissuer = \"https://idp\"\nclient_id = \"c\"\nclient_secret_file = \"/s\"\nredirect_url = \"https://vpn/oidc/callback\"\n",
        )
        .unwrap()
        .oidc;
        let (mut store, _) = Store::init(&cfg).unwrap();
        store
            .conn
            .execute_batch(&format!(
                "INSERT INTO servers (name, host, ca_pem, tls_mode, tls_key, created_at) VALUES ('nl-1', 'h', 'x', 'tls-crypt', 'k', 0);
                 INSERT INTO users (name, password_hash, all_servers, created_at, updated_at)
                   VALUES ('sam', '!', 1, 0, 0), ('eve', '!', 1, 0, 0);
                 INSERT INTO sessions (user_id, server_id, connected_at, real_ip, real_port) VALUES
                   (1, 1, {at}, '192.0.2.2', 5000), (1, 1, {at}, '2001:db8::3', 5001), (2, 1, {at}, '192.0.2.4', 5002);",
                at = NOW - 60
            ))
            .unwrap();
        crate::oidc::keep_grant(&store, "nl-1", 1, Some("rt"), NOW - 60).unwrap();
        crate::oidc::keep_grant(&store, "nl-1", 2, Some("rt-e"), NOW - 60).unwrap();
        let g = crate::oidc::grants_due(&store, "nl-1", NOW).unwrap().remove(1);
        assert_eq!(g.username, "sam");
        crate::oidc::grant_checked(&store, "nl-1", &g, Err("not a member of the required group vpn"), NOW).unwrap();
        let status = format!(
            "HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tBytes Received\tBytes Sent\tConnected Since (time_t)\tUsername\tClient ID\n\
             CLIENT_LIST\tsam\t192.0.2.2:5000\t10\t5\t{at}\tsam\t3\n\
             CLIENT_LIST\tsam\t2001:db8::3\t10\t5\t{at}\tsam\t4\n\
             CLIENT_LIST\teve\t192.0.2.4:5002\t10\t5\t{at}\teve\t5\n",
            at = NOW - 60
        );
        let live = parse_status(&status).unwrap();
        let mut cut = vec![];
        let mut kill = |c: &LiveClient| -> Result<()> {
            cut.push(c.client_id);
            Ok(())
        };
        let rep = run(&mut store, &cfg, "nl-1", Some(&live), Some(&mut kill), NOW).unwrap();
        assert_eq!(rep.killed.len(), 2, "{:?}", rep.killed);
        assert_eq!(
            rep.killed[0].reason,
            "the identity provider no longer admits the user: not a member of the required group vpn"
        );
        assert_eq!(cut, [Some(3), Some(4)]);
    }
}
