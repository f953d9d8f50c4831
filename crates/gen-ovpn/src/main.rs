//! gen-ovpn USER SERVER [--out FILE]: a complete inline client profile.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use tollgate_core::{openvpn, profile, units, Config, Store};

/// Print a complete OpenVPN client profile (.ovpn) for USER on SERVER.
///
/// The profile is inline: CA certificate, tls-crypt or tls-auth key, and the
/// user's own certificate and key only when the server requires client
/// certificates. It never contains the CA's or the server's private key. It
/// adapts to the user: `static-challenge` for a second factor (`auth-retry
/// interact` when `[mfa] mode = "dynamic"`), `push-peer-info` when device
/// binding is on, and `setenv IV_SSO webauth` for a user who signs in
/// through the OpenID provider (auth method `oidc`). Refuses (one line, exit 1) an
/// unknown user or server, a disabled user, or a user without access.
#[derive(Parser)]
#[command(name = "gen-ovpn", version)]
struct Args {
    user: String,
    server: String,
    /// Write the profile to FILE (mode 0600) instead of standard output
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Config file (default: $TOLLGATE_CONFIG or /etc/tollgate/tollgate.toml)
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

fn main() {
    // `gen-ovpn alice nl-1 | head`: end quietly on a closed pipe.
    // SAFETY: resetting a signal to its default action at start-up.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    if let Err(e) = run(Args::parse()) {
        eprintln!("gen-ovpn: {e:#}");
        std::process::exit(1);
    }
}

fn run(a: Args) -> Result<()> {
    let cfg = Config::load(a.config.as_deref())?;
    let store = Store::open_admin(&cfg)?;
    let now = units::now();
    let (srv, user) = profile::load(&store, &a.user, &a.server, &cfg, now)?;
    let text = profile::render(&srv, &user, &units::format_time(now));
    match a.out {
        None => std::io::stdout().write_all(text.as_bytes())?,
        Some(path) => {
            // Never write through a link (gen-ovpn often runs as root, into
            // directories others may write): refuse one, and replace the
            // file by rename, so a link planted meanwhile is replaced
            // itself, not its target. The profile holds keys: mode 0600.
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                bail!("{} is a symbolic link: refusing to write through it", path.display());
            }
            openvpn::write_durable(&path, text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("gen-ovpn: wrote {}", path.display());
        }
    }
    Ok(())
}
