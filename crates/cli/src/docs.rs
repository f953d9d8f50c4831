//! Man pages and shell completions, from the same clap definitions as the
//! commands themselves (gen-ovpn's is its own source file, included here).

use crate::{Cli, Cmd};
use anyhow::{Context, Result};
use clap::CommandFactory;

#[allow(dead_code)] // only the definition is used here
#[path = "../../gen-ovpn/src/args.rs"]
mod gen_ovpn;

pub fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Completions { shell, command } => {
            let mut c = if command == "gen-ovpn" { gen_ovpn::Args::command() } else { Cli::command() };
            let name = c.get_name().to_string();
            clap_complete::generate(shell, &mut c, name, &mut std::io::stdout());
        }
        Cmd::Man { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            for c in [Cli::command(), gen_ovpn::Args::command()] {
                clap_mangen::generate_to(c, &dir).with_context(|| format!("cannot write into {}", dir.display()))?;
            }
        }
        _ => unreachable!("not a documentation command"),
    }
    Ok(())
}
