//! `tollgate`: the admin CLI. Argument parsing and printing only; the rules
//! live in tollgate-core.

mod accounting;
mod admin;
mod docs;
mod doctor;
mod metrics;
mod oidc_client;
mod out;
mod site;
mod web;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const ABOUT: &str = "User authentication, quotas and accounting for OpenVPN Community Edition";
const LONG_ABOUT: &str = "\
tollgate manages the users, plans, groups and servers that tollgate's OpenVPN
hooks (auth-verify, client-connect, client-disconnect) decide on. Everything
lives in one SQLite database named by the config file.

Config: --config PATH, else $TOLLGATE_CONFIG, else /etc/tollgate/tollgate.toml.
Sizes are a number and a unit: B/KB/MB/GB/TB or KiB/MiB/GiB/TiB (5GiB, 1.5 GB);
durations too, s/m/h/d/w, larger first (8h, 30d, 1h30m, 1h 30m); units are
case-insensitive and a bare number is refused. 0 is never a limit: `none`
lifts one. Expiry dates are YYYY-MM-DD (valid through that UTC day), an
RFC 3339 time, or a duration from now (30d). JSON times are RFC 3339.
Passwords are read from a no-echo prompt or, with --password-stdin, from the
first line of standard input; never from the command line.
Every listing takes --json. Errors are one line on stderr and a non-zero exit.";

#[derive(Parser)]
#[command(name = "tollgate", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Config file (default: $TOLLGATE_CONFIG or /etc/tollgate/tollgate.toml)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Create the database, or migrate it to this build's schema
    Init,
    /// Copy this server's SQLite database into a new PostgreSQL one, for a fleet.
    ///
    /// Creates tollgate's tables in the PostgreSQL database named by --to
    /// (which must exist and hold no tollgate data: `createdb`), copies
    /// every table with all its history and ids in one transaction, checks
    /// that every table's row count and the usage totals match, and says
    /// what to change in the config. The SQLite file is left as it was.
    /// Stop OpenVPN (or its hooks) first: what they write during the copy
    /// stays in the SQLite file only. The password comes from a pgpass file
    /// named in the URL (passfile=...), never from the command line.
    MigrateStore {
        /// The target: postgresql://USER@HOST[:PORT]/DBNAME[?passfile=...&sslrootcert=...]
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// OpenVPN servers (instances) users can be granted
    #[command(subcommand)]
    Server(ServerCmd),
    /// Plans: data quota, quota period, session and connection limits, lifetime
    #[command(subcommand)]
    Plan(PlanCmd),
    /// Groups: shared server grants and pushed routes
    #[command(subcommand)]
    Group(GroupCmd),
    /// Users and their passwords, plans, groups, grants and expiry
    #[command(subcommand)]
    User(UserCmd),
    /// Second factor (TOTP): enroll or disable a user's authenticator
    #[command(subcommand)]
    Mfa(MfaCmd),
    /// Devices bound to a user (device binding)
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Tokens for the self-service JSON API (`tollgate web`), for sellers' dashboards
    #[command(subcommand)]
    Token(TokenCmd),
    /// Sessions (tunnels), newest first; `sessions close ID` ends one by hand
    #[command(args_conflicts_with_subcommands = true)]
    Sessions {
        #[command(subcommand)]
        action: Option<SessionsCmd>,
        /// Only sessions still open
        #[arg(long)]
        open: bool,
        /// Only this user
        #[arg(long)]
        user: Option<String>,
        /// Only this server
        #[arg(long)]
        server: Option<String>,
        /// How many at most
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Data used per user: the current quota period and in total
    Usage {
        /// Only this user
        #[arg(long)]
        user: Option<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Charge live byte counts, cut clients that must go, close lost sessions.
    ///
    /// Meant for cron or a systemd timer, every minute or so. Reads the live
    /// client list from OpenVPN's management interface (`status 3`) or a
    /// status file, charges each open session's new bytes to its user's usage,
    /// kills (client-kill HALT) clients that are over quota, expired,
    /// disabled, deleted or past their plan's session time, or single sign-on
    /// users the identity provider no longer admits (asked again with the
    /// sign-in's refresh token every `[oidc] recheck_every`), closes sessions
    /// that OpenVPN lost (open in the database, absent from the live list:
    /// after a crash), applies spooled disconnect records and prunes old
    /// events. Safe to run while hooks run. With a status file nothing can be
    /// killed; the clients that would be are listed.
    Sweep {
        /// Management interface: unix:/path or HOST:PORT (default: `management` in the config)
        #[arg(long, value_name = "ADDR")]
        management: Option<String>,
        /// Status file written with status-version 2 or 3 (default: `status_file` in the config)
        #[arg(long, value_name = "FILE", conflicts_with = "management")]
        status: Option<PathBuf>,
        /// Server name (default: `server` in the config)
        #[arg(long)]
        server: Option<String>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Client addresses counting failed logins, and those blocked ([lockout] per_source)
    Blocked {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Lift the block on a client address and reset its failure count
    Unblock { address: String },
    /// Recent auth decisions (the auth_events log)
    Events {
        /// Only this user
        #[arg(long)]
        user: Option<String>,
        /// How many, newest first
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Serve the single sign-on pages ([oidc]) and the users' self-service
    /// site ([self_service]).
    ///
    /// The self-service site: users sign in with their own password (and
    /// authenticator code), under the VPN's lockout rules; download the
    /// profile of each server they may use (what gen-ovpn makes); see their
    /// plan, quota used and left, connections and recent sign-ins; set up
    /// an authenticator app (QR code, confirmed by a code), remove devices
    /// and change their password, as [self_service] allows. The same data
    /// is served as JSON under /api/v1/ for a signed-in user, or for an
    /// admin token (`tollgate token add`). Sessions last [self_service]
    /// session_lifetime; `tollgate user disable` ends them.
    ///
    /// A client of an `oidc` user gets a link (`[oidc] login_url?l=…`); its
    /// page says which server, address and client the login is for, then
    /// sends the browser to the provider. The callback (`redirect_url`)
    /// checks that browser and the state, redeems the code (PKCE), verifies
    /// the ID token by the provider's published keys, and hands the identity
    /// to the waiting login. Login links are single use and die with the
    /// login's timeout.
    ///
    /// Runs in the foreground on --listen, or on the socket systemd passes
    /// (socket activation; see the admin guide). With --idle-exit it ends
    /// once nobody has used it for that many seconds. Run it as the user
    /// the hooks run as (it writes the database). GET /health answers "ok".
    Web {
        /// Address to listen on, e.g. 127.0.0.1:8443 (not needed under systemd socket activation)
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// TLS certificate chain (PEM); without it, plain HTTP (behind a TLS reverse proxy)
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM)
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Exit after this many seconds without a request
        #[arg(long, value_name = "SECONDS")]
        idle_exit: Option<u64>,
    },
    /// Check what would break logins: config, database, OpenVPN's server.conf
    ///
    /// Reads the config, the database and the OpenVPN server config (the
    /// file given, else every *.conf in /etc/openvpn/server and /etc/openvpn
    /// whose auth-user-pass-verify runs tollgate's auth-verify with this
    /// config) and prints one line per check, each problem with its fix:
    /// hooks missing or not executable by OpenVPN's user, script-security
    /// below 2, a config the hooks cannot read, a database or directory
    /// they cannot write, a shared or unwritable tmp-dir, auth-gen-token
    /// without external-auth, reneg-sec or hand-window too short for
    /// session tokens or for the slowest deferred login, no management
    /// interface for the sweep, this server missing from the database, a
    /// clock behind the database's newest record (TOTP codes refused).
    /// Permissions are judged as OpenVPN's `user`/`group` after it drops
    /// privileges, from mode bits (ACLs are not read).
    ///
    /// Exit status: 0 when nothing is wrong (warnings allowed), 1 when
    /// something would break logins.
    Doctor {
        /// OpenVPN server config to check (default: those in /etc/openvpn that run tollgate with this config)
        #[arg(long, value_name = "FILE")]
        openvpn_config: Option<PathBuf>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Print Prometheus metrics (text exposition format)
    ///
    /// Open sessions per server, auth decisions in the events window by
    /// result and reason, bytes per plan, users at 80% and 100% of their
    /// quota, users by state, and each server's last sweep. With --write
    /// FILE the text replaces FILE atomically (for node_exporter's textfile
    /// collector; install.sh --metrics-textfile DIR sets that up after each
    /// sweep).
    Metrics {
        /// Write to this file (atomically, mode 0644) instead of stdout
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
    },
    /// Print a shell completion script for tollgate (or, with --for, gen-ovpn)
    ///
    /// install.sh installs them; by hand, e.g.:
    ///   tollgate completions bash > /usr/local/share/bash-completion/completions/tollgate
    ///   tollgate completions zsh > /usr/local/share/zsh/site-functions/_tollgate
    ///   tollgate completions fish > /usr/local/share/fish/vendor_completions.d/tollgate.fish
    Completions {
        shell: clap_complete::Shell,
        /// The command to complete
        #[arg(long = "for", value_name = "COMMAND", default_value = "tollgate",
              value_parser = ["tollgate", "gen-ovpn"])]
        command: String,
    },
    /// Write the man pages into DIR: tollgate.1, one per subcommand
    /// (tollgate-user-add.1 …) and gen-ovpn.1
    ///
    /// install.sh installs them into /usr/local/share/man/man1.
    Man {
        /// Directory to write the pages into (created if missing)
        dir: PathBuf,
    },
    /// Run the auth decision for USER as auth-verify would, and print it.
    ///
    /// The whole flow runs, the post-auth program included: its input (the
    /// password masked) and output are printed. Nothing is recorded: no
    /// lockout counting, no event, no saved data, no challenge state.
    ///
    /// Exit status: 0 accepted, 3 challenged (the client would be asked a
    /// question), 4 denied; 1 when test-auth itself fails (config, database,
    /// an untrusted program), 2 for a command-line error.
    TestAuth {
        user: String,
        /// Server name (default: `server` from the config)
        #[arg(long)]
        server: Option<String>,
        /// Read the password from the first line of stdin
        #[arg(long)]
        password_stdin: bool,
        /// The second factor's code, sent with the password as a client
        /// answering a static challenge would (SCRV1)
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
        /// Client address to pretend
        #[arg(long, default_value = "127.0.0.1")]
        ip: String,
        /// Hardware address the client would send (IV_HWADDR, or the configured devices.source)
        #[arg(long, value_name = "MAC")]
        hwaddr: Option<String>,
        /// Peer info the client would send, e.g. --peer IV_PLAT=win (repeatable)
        #[arg(long, value_name = "NAME=VALUE")]
        peer: Vec<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum SessionsCmd {
    /// Close open sessions by hand (IDs from `tollgate sessions --open`).
    ///
    /// For a session that nothing else will close: its OpenVPN is gone and
    /// no sweep can see it. The tunnel itself is not touched (cut a live
    /// client with `tollgate user disable` and a sweep). Bytes not yet
    /// charged by a sweep are not known and are not charged. Closed sessions
    /// stop counting against the user's connection limit at once.
    Close {
        #[arg(required = true)]
        ids: Vec<i64>,
        /// Why, kept as the session's close reason
        #[arg(long, default_value = "closed by admin")]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum DeviceCmd {
    /// List a user's devices: approved ones and ones waiting for approval
    List {
        name: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Approve a device for a user (MAC address or the id the client sends)
    Add { name: String, hwaddr: String },
    /// Remove one device from a user
    Del { name: String, hwaddr: String },
    /// Remove all of a user's devices (frees every slot)
    Reset { name: String },
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a token: printed once, only its hash is kept.
    ///
    /// The token goes in an `Authorization: Bearer TOKEN` header and reads
    /// any user's data through /api/v1/users/USER/...; its scopes say what:
    /// `profile` (the .ovpn files), `usage` (plan, quota and bytes),
    /// `sessions` (tunnels and recent logins), or `all`. Keep it like a
    /// password: whoever has it reads what its scopes allow.
    Add {
        /// A name to list and revoke it by
        name: String,
        /// What it may read: profile, usage, sessions (comma-separated) or all
        #[arg(long, value_name = "SCOPES")]
        scope: String,
        /// Last day it works, YYYY-MM-DD (UTC), or a duration from now (90d); default: until revoked
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens: names, scopes, state and last use (never the secrets)
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: refused from then on, still listed
    Revoke { name: String },
}

#[derive(Subcommand)]
pub enum MfaCmd {
    /// Give USER a new TOTP secret: prints an otpauth:// URI and a QR code.
    ///
    /// Scan the QR code (or paste the URI) into an authenticator app, then
    /// enter the 6-digit code it shows: the second factor is on once that
    /// code checks out. Until then the user logs in with the password alone.
    /// The code is read from the first line of standard input.
    Enroll {
        name: String,
        /// Turn the second factor on at once, without a first code
        #[arg(long)]
        no_confirm: bool,
        /// Replace a second factor the user already has
        #[arg(long)]
        force: bool,
    },
    /// Remove USER's second factor
    Disable { name: String },
}

#[derive(Subcommand)]
pub enum ServerCmd {
    /// Add a server and what its client profiles need
    Add(ServerAdd),
    /// Change a server: only what is given changes; its grants, sessions
    /// and users stay. Profiles made before carry the old settings: make
    /// them again with gen-ovpn.
    Set(ServerSet),
    /// List servers
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one server
    Show {
        name: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Delete a server (its grants go with it).
    ///
    /// Refused while the server has open sessions, which would otherwise
    /// count against their users' limits with nothing left to close them;
    /// --force closes them first (reason "server deleted").
    Del {
        name: String,
        /// Close the server's open sessions, then delete it
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args)]
pub struct ServerAdd {
    /// Short name, e.g. nl-1 (what hooks get with --server or `server` in the config)
    pub name: String,
    /// Address clients connect to (put in profiles as `remote`)
    #[arg(long)]
    pub host: String,
    /// Port clients connect to (1-65535)
    #[arg(long, default_value_t = 1194, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    #[arg(long, default_value = "udp", value_parser = ["udp", "tcp"])]
    pub proto: String,
    /// CA certificate (PEM) that signed the server certificate
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// tls-crypt key file
    #[arg(long, value_name = "FILE", conflicts_with = "tls_auth", required_unless_present = "tls_auth")]
    pub tls_crypt: Option<PathBuf>,
    /// tls-auth key file
    #[arg(long, value_name = "FILE")]
    pub tls_auth: Option<PathBuf>,
    /// key-direction for tls-auth (clients normally use 1)
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1), requires = "tls_auth")]
    pub key_direction: Option<u8>,
    /// data-ciphers for client profiles, e.g. AES-256-GCM:CHACHA20-POLY1305
    #[arg(long)]
    pub data_ciphers: Option<String>,
    /// Extra client directive (repeatable), e.g. --extra 'verb 3'
    #[arg(long, value_name = "LINE")]
    pub extra: Vec<String>,
    /// Clients need their own certificate (taken from --pki-dir)
    #[arg(long, requires = "pki_dir")]
    pub client_cert: bool,
    /// PKI directory with issued/USER.crt and private/USER.key (easy-rsa layout)
    #[arg(long, value_name = "DIR")]
    pub pki_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct ServerSet {
    pub name: String,
    /// Address clients connect to
    #[arg(long)]
    pub host: Option<String>,
    /// Port clients connect to (1-65535)
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    #[arg(long, value_parser = ["udp", "tcp"])]
    pub proto: Option<String>,
    /// CA certificate (PEM) that signed the server certificate
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// tls-crypt key file (replaces a tls-auth key)
    #[arg(long, value_name = "FILE", conflicts_with = "tls_auth")]
    pub tls_crypt: Option<PathBuf>,
    /// tls-auth key file (replaces a tls-crypt key)
    #[arg(long, value_name = "FILE")]
    pub tls_auth: Option<PathBuf>,
    /// key-direction for tls-auth
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub key_direction: Option<u8>,
    /// data-ciphers for client profiles (`none` to leave it to OpenVPN)
    #[arg(long)]
    pub data_ciphers: Option<String>,
    /// Replace the extra client directives with these (repeatable)
    #[arg(long, value_name = "LINE")]
    pub extra: Vec<String>,
    /// Remove every extra client directive
    #[arg(long, conflicts_with = "extra")]
    pub clear_extra: bool,
    /// Clients need their own certificate (or `--client-cert false`)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub client_cert: Option<bool>,
    /// PKI directory with issued/USER.crt and private/USER.key (`none` to clear)
    #[arg(long, value_name = "DIR")]
    pub pki_dir: Option<String>,
}

#[derive(Subcommand)]
pub enum PlanCmd {
    /// Add a plan. Unset limits are unlimited.
    Add(PlanArgs),
    /// Change a plan. `none` clears a limit.
    Set(PlanArgs),
    /// List plans
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one of the plans in full
    Show {
        name: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Delete a plan no user is on
    Del { name: String },
}

#[derive(Args)]
pub struct PlanArgs {
    pub name: String,
    /// Data quota per period, in + out (e.g. 50GiB; `none` = unlimited)
    #[arg(long)]
    pub quota: Option<String>,
    /// Quota period: calendar month, ISO week or day in UTC, or total
    #[arg(long, value_parser = ["month", "week", "day", "total"])]
    pub period: Option<String>,
    /// Longest single session (e.g. 8h; `none`)
    #[arg(long)]
    pub max_session: Option<String>,
    /// Simultaneous connections (`none` = unlimited)
    #[arg(long)]
    pub max_connections: Option<String>,
    /// The plan runs out this long after a user is put on it (e.g. 30d; `none`)
    #[arg(long)]
    pub expires_after: Option<String>,
}

#[derive(Subcommand)]
pub enum GroupCmd {
    /// Add a group
    Add(GroupArgs),
    /// Change a group: --push replaces the push list, --server adds grants
    Set(GroupSet),
    /// List groups
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one of the groups in full
    Show {
        name: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Delete a group. A group with members is kept unless --force, which
    /// leaves its members without a group (they keep their own grants).
    Del {
        name: String,
        /// Delete it even though users are in it
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args)]
pub struct GroupArgs {
    pub name: String,
    /// Option to push to members (repeatable), e.g. 'route 10.1.0.0 255.255.0.0'
    #[arg(long, value_name = "OPTION")]
    pub push: Vec<String>,
    /// Push redirect-gateway def1 (all traffic through the VPN)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub redirect_gateway: Option<bool>,
    /// Grant members this server (repeatable)
    #[arg(long, value_name = "SERVER")]
    pub server: Vec<String>,
    /// Grant members every server
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub all_servers: Option<bool>,
    /// Members' auth method (local, program, ldap, radius, oidc), unless set on the user (`default` = the config's)
    #[arg(long, value_name = "METHOD", value_parser = ["local", "program", "ldap", "radius", "oidc", "default"])]
    pub auth: Option<String>,
}

/// `group set`: what `group add` takes, and what only an existing group
/// can have taken away.
#[derive(Args)]
pub struct GroupSet {
    #[command(flatten)]
    pub group: GroupArgs,
    /// Remove all push options
    #[arg(long, conflicts_with = "push")]
    pub clear_push: bool,
    /// Revoke this server from the group (repeatable)
    #[arg(long, value_name = "SERVER")]
    pub revoke: Vec<String>,
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Add a user (prompts for the password unless --password-stdin)
    Add(UserAdd),
    /// Set a user's password
    Passwd {
        name: String,
        /// Read the password from the first line of stdin instead of prompting
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user. `none`/`never` clears a value.
    Set(UserSet),
    /// Allow the user to log in again
    Enable { name: String },
    /// Refuse the user's logins (open sessions are cut by `tollgate sweep`)
    Disable { name: String },
    /// Lift a lockout and reset the failure count
    Unlock { name: String },
    /// Delete a user with their devices, sessions and usage
    Del { name: String },
    /// List users
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one of the users in full
    Show {
        name: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct UserAdd {
    /// Login name: letters, digits and . _ @ + - (up to 64)
    pub name: String,
    /// Read the password from the first line of stdin instead of prompting
    #[arg(long)]
    pub password_stdin: bool,
    /// Plan: quota, limits and lifetime (`tollgate plan list`)
    #[arg(long)]
    pub plan: Option<String>,
    /// Group: shared server grants and pushed routes (`tollgate group list`)
    #[arg(long)]
    pub group: Option<String>,
    /// Last day the account works, YYYY-MM-DD (UTC), or a duration from now (30d)
    #[arg(long)]
    pub expires: Option<String>,
    /// Grant this server (repeatable)
    #[arg(long, value_name = "SERVER")]
    pub server: Vec<String>,
    /// Grant every server, present and future
    #[arg(long)]
    pub all_servers: bool,
    /// Always give this VPN address (ifconfig-push)
    #[arg(long, value_name = "IP")]
    pub static_ip: Option<String>,
    /// Create the account disabled
    #[arg(long)]
    pub disabled: bool,
    /// Auth method: local (tollgate's password), program (the post-auth
    /// program checks the password), ldap or radius (the directory does),
    /// oidc (single sign-on in a browser); only local asks for a password
    /// (an oidc user given one on stdin may use it where [oidc]
    /// password_fallback allows). Default: the group's, else the config's
    /// [auth] method.
    #[arg(long, value_name = "METHOD", value_parser = ["local", "program", "ldap", "radius", "oidc"])]
    pub auth: Option<String>,
}

#[derive(Args)]
pub struct UserSet {
    pub name: String,
    /// Plan (`none` to remove); restarts the plan's expires-after clock
    #[arg(long)]
    pub plan: Option<String>,
    /// Group (`none` to remove)
    #[arg(long)]
    pub group: Option<String>,
    /// Last day the account works, YYYY-MM-DD, or a duration from now (30d); `never` clears it
    #[arg(long)]
    pub expires: Option<String>,
    /// VPN address to push (`none` to clear)
    #[arg(long, value_name = "IP")]
    pub static_ip: Option<String>,
    /// Device limit for device binding, at least 1 (`none` = plan/config default)
    #[arg(long, value_name = "N")]
    pub max_devices: Option<String>,
    /// Device binding mode (`default` = plan/config default)
    #[arg(long, value_parser = ["off", "auto", "manual", "default"])]
    pub device_binding: Option<String>,
    /// Grant this server (repeatable)
    #[arg(long, value_name = "SERVER")]
    pub server: Vec<String>,
    /// Revoke this server (repeatable)
    #[arg(long, value_name = "SERVER")]
    pub revoke: Vec<String>,
    /// Grant every server (or `--all-servers false`)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub all_servers: Option<bool>,
    /// Auth method: local, program, ldap, radius, oidc, or `default` (the group's, else the config's)
    #[arg(long, value_name = "METHOD", value_parser = ["local", "program", "ldap", "radius", "oidc", "default"])]
    pub auth: Option<String>,
    /// Forget what the post-auth program saved for the user
    #[arg(long)]
    pub clear_saved: bool,
}

/// A command line that does not parse: one line on stderr (clap's reason
/// and its tip, if any), exit 2. Help and version print as clap does.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let line = tollgate_core::usage::one_line(&e.render().to_string());
    eprintln!("tollgate: {line}");
    std::process::exit(2);
}

fn main() {
    // `tollgate user list | head`: end quietly when the reader goes away,
    // as Unix tools do, instead of panicking on a broken pipe.
    // SAFETY: resetting a signal to its default action at start-up.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::try_parse().unwrap_or_else(|e| usage_error(e));
    // These need no config or database.
    if let Cmd::Completions { .. } | Cmd::Man { .. } = cli.cmd {
        if let Err(e) = docs::run(cli.cmd) {
            eprintln!("tollgate: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    // Files we create (database, -wal, -shm) are for us and the OpenVPN
    // group only.
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o007) };
    match admin::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("tollgate: {e:#}");
            std::process::exit(1);
        }
    }
}
