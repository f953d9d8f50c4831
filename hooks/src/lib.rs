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
