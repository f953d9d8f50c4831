//! gen-ovpn's command line, alone in this file so that `tollgate man` and
//! `tollgate completions` include the very same definition.

use clap::Parser;
use std::path::PathBuf;

/// Print a complete OpenVPN client profile (.ovpn) for USER on SERVER.
///
/// The profile is inline: CA certificate, tls-crypt or tls-auth key, and the
/// user's own certificate and key only when the server requires client
/// certificates. It never contains the CA's or the server's private key. It
/// adapts to the user: `static-challenge` for a second factor (`auth-retry
/// interact` when `[mfa] mode = "dynamic"`), `push-peer-info` when device
/// binding is on or the server's checks want UV_ variables, `setenv UV_…`
/// for each `[client_checks] require` (at its minimum) and a device id of
/// the profile's own when `[devices] source` is a UV_ variable (printed on
/// stderr, for `tollgate device add`), and `setenv IV_SSO webauth` for a
/// user who signs in through the OpenID provider (auth method `oidc`; where
/// that is not the default method, also `setenv UV_TOLLGATE_SSO 1`, which
/// spares auth-verify a look-up).
/// Refuses (one line, exit 1) an unknown user or server, a disabled user,
/// or a user without access; a command-line mistake is one line, exit 2.
#[derive(Parser)]
#[command(name = "gen-ovpn", version)]
pub struct Args {
    /// The user the profile is for
    pub user: String,
    /// The server it connects to (as in `tollgate server list`)
    pub server: String,
    /// Write the profile to FILE (mode 0600) instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Config file (default: $TOLLGATE_CONFIG or /etc/tollgate/tollgate.toml)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}
