//! gen-ovpn USER SERVER [--out FILE]: a complete inline client profile.

mod args;
use args::Args;

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::io::Write;
use tollgate_core::{openvpn, profile, units, Config, Store};

fn main() {
    // `gen-ovpn alice nl-1 | head`: end quietly on a closed pipe.
    // SAFETY: resetting a signal to its default action at start-up.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args = Args::try_parse().unwrap_or_else(|e| {
        use clap::error::ErrorKind;
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            e.exit();
        }
        // One line, exit 2, as tollgate's own command-line mistakes.
        eprintln!("gen-ovpn: {}", tollgate_core::usage::one_line(&e.render().to_string()));
        std::process::exit(2);
    });
    if let Err(e) = run(args) {
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
    if let Some((source, id)) = user.setenv.iter().find(|(name, _)| *name == cfg.devices.source) {
        eprintln!(
            "gen-ovpn: this profile's device id ({source}) is {id}; under manual device binding approve it with: tollgate device add {} {id}",
            a.user
        );
    }
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
