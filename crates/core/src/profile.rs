//! Client profiles (.ovpn): what gen-ovpn prints. Rendering is pure; the
//! loading checks that the user may have one.

use crate::db::Optional;
use crate::policy::Deny;
use crate::store::Store;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// What a profile needs from the server record.
#[derive(Debug, Clone, Default)]
pub struct ServerProfile {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub proto: String,
    pub ca_pem: String,
    pub tls_mode: String,
    pub tls_key: String,
    pub key_direction: Option<u8>,
    pub data_ciphers: Option<String>,
    pub extra: Vec<String>,
}

/// What a profile adapts to in the user.
#[derive(Debug, Clone, Default)]
pub struct UserProfile {
    pub name: String,
    /// Second factor in static-challenge mode: the client asks for the code with the password.
    pub static_challenge: bool,
    /// Second factor by dynamic challenge (CRV1): the client must answer interactively.
    pub dynamic_challenge: bool,
    /// The client must send its peer info: device binding is on, or the
    /// server's checks want UV_ variables.
    pub push_peer_info: bool,
    /// `setenv UV_… value` the server's checks expect: `[client_checks]
    /// require` at its minimum, and a device id of this profile's own when
    /// `[devices] source` is a UV_ variable.
    pub setenv: Vec<(String, String)>,
    /// The user signs in through the OpenID provider (auth method `oidc`):
    /// the client must announce web auth.
    pub sso: bool,
    /// The user's own certificate and key, when the server requires them.
    pub cert: Option<(String, String)>,
}

pub const STATIC_CHALLENGE_TEXT: &str = "Enter your authenticator code";

pub fn render(s: &ServerProfile, u: &UserProfile, generated: &str) -> String {
    let mut o = String::new();
    let mut line = |l: &str| {
        o.push_str(l);
        o.push('\n');
    };
    line(&format!("# tollgate profile for {} on {} ({generated})", u.name, s.name));
    line("client");
    line("dev tun");
    line(&format!("proto {}", if s.proto == "tcp" { "tcp-client" } else { "udp" }));
    line(&format!("remote {} {}", s.host, s.port));
    line("resolv-retry infinite");
    line("nobind");
    line("persist-key");
    line("persist-tun");
    line("remote-cert-tls server");
    line("auth-user-pass");
    line("auth-nocache");
    if s.proto != "tcp" {
        line("explicit-exit-notify 1");
    }
    if let Some(c) = &s.data_ciphers {
        line(&format!("data-ciphers {c}"));
    }
    if u.sso {
        line("# Single sign-on: after the username (any password: it is not checked) the");
        line("# client is sent a sign-in link. OpenVPN Connect opens it; the OpenVPN 2.6");
        line("# command line shows it on its management interface (>INFOMSG:WEB_AUTH::).");
        line("setenv IV_SSO webauth");
    }
    if u.static_challenge {
        line(&format!("static-challenge \"{STATIC_CHALLENGE_TEXT}\" 1"));
    }
    if u.dynamic_challenge {
        line("auth-retry interact");
    }
    for (name, value) in &u.setenv {
        line(&format!("setenv {name} {value}"));
    }
    if u.push_peer_info {
        line("push-peer-info");
    }
    line("verb 3");
    for e in &s.extra {
        line(e);
    }
    let block = |o: &mut String, tag: &str, body: &str| {
        o.push_str(&format!("<{tag}>\n{}\n</{tag}>\n", body.trim()));
    };
    block(&mut o, "ca", &s.ca_pem);
    if s.tls_mode == "tls-auth" {
        o.push_str(&format!("key-direction {}\n", s.key_direction.unwrap_or(1)));
        block(&mut o, "tls-auth", &s.tls_key);
    } else {
        block(&mut o, "tls-crypt", &s.tls_key);
    }
    if let Some((cert, key)) = &u.cert {
        block(&mut o, "cert", cert);
        block(&mut o, "key", key);
    }
    o
}

/// Load and check everything for `gen-ovpn USER SERVER`: refuses an unknown
/// user or server, a disabled user, or a user without access to the server.
pub fn load(
    store: &Store,
    user: &str,
    server: &str,
    cfg: &crate::config::Config,
    now: i64,
) -> Result<(ServerProfile, UserProfile)> {
    let mfa_mode = cfg.mfa.mode;
    let c = &store.conn;
    let srv = c
        .query_row(
            "SELECT name, host, port, proto, ca_pem, tls_mode, tls_key, key_direction, data_ciphers, extra,
                    client_cert, pki_dir FROM servers WHERE name = ?1",
            [server],
            |r| {
                Ok((
                    ServerProfile {
                        name: r.get(0)?,
                        host: r.get(1)?,
                        port: r.get(2)?,
                        proto: r.get(3)?,
                        ca_pem: r.get(4)?,
                        tls_mode: r.get(5)?,
                        tls_key: r.get(6)?,
                        key_direction: r.get(7)?,
                        data_ciphers: r.get(8)?,
                        extra: r.get::<_, String>(9)?.lines().map(str::to_string).collect(),
                    },
                    r.get::<_, bool>(10)?,
                    r.get::<_, Option<String>>(11)?,
                ))
            },
        )
        .optional()?;
    let Some((srv, needs_cert, pki_dir)) = srv else { bail!("no such server: {server}") };
    let account = crate::auth::load(store, user, server, now)?.facts;
    match crate::standing::check(&account, crate::standing::Checkpoint::Profile, now) {
        None => {}
        Some(Deny::UnknownUser) => bail!("no such user: {user}"),
        Some(d @ Deny::NoGrant { .. }) => {
            bail!("user {user} may not connect: {} (tollgate user set {user} --server {server})", d.log_reason())
        }
        Some(d) => bail!("user {user} may not connect: {}", d.log_reason()),
    }
    let (mfa, binding): (bool, Option<String>) = c.query_row(
        "SELECT totp_secret IS NOT NULL AND totp_confirmed <> 0, device_binding FROM users WHERE name = ?1",
        [user],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    // The second factor of an SSO user is the provider's business.
    let sso = crate::auth::method_of(store, cfg, user)? == crate::method::AuthMethod::Oidc;
    let binding = binding.as_deref().and_then(crate::devices::Binding::parse).unwrap_or(cfg.devices.binding);
    let mut setenv: Vec<(String, String)> = cfg
        .client_checks
        .require
        .iter()
        .map(|(name, min)| (name.clone(), if min.is_empty() { "1".to_string() } else { min.clone() }))
        .collect();
    if binding != crate::devices::Binding::Off && cfg.devices.source.starts_with("UV_") {
        setenv.push((cfg.devices.source.clone(), new_device_id()));
    }
    if sso && cfg.auth_method != crate::method::AuthMethod::Oidc {
        setenv.push((crate::oidc::PROFILE_HINT.to_string(), "1".to_string()));
    }
    let mut up = UserProfile {
        name: user.to_string(),
        static_challenge: mfa && !sso && mfa_mode != crate::config::MfaMode::Dynamic,
        dynamic_challenge: mfa && !sso && mfa_mode == crate::config::MfaMode::Dynamic,
        sso,
        push_peer_info: binding != crate::devices::Binding::Off || !setenv.is_empty(),
        setenv,
        cert: None,
    };
    if needs_cert {
        let dir = Path::new(pki_dir.as_deref().unwrap_or(""));
        let cert_path = dir.join("issued").join(format!("{user}.crt"));
        let key_path = dir.join("private").join(format!("{user}.key"));
        let cert = std::fs::read_to_string(&cert_path).with_context(|| {
            format!("server {server} needs client certificates: cannot read {}", cert_path.display())
        })?;
        let key = std::fs::read_to_string(&key_path).with_context(|| format!("cannot read {}", key_path.display()))?;
        let pem = cert.find("-----BEGIN CERTIFICATE-----").map(|i| cert[i..].to_string()).unwrap_or(cert);
        up.cert = Some((pem, key));
    }
    Ok((srv, up))
}

/// A profile's own device id: 128 random bits in hex (what survives
/// OpenVPN's cleaning of peer info).
fn new_device_id() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> ServerProfile {
        ServerProfile {
            name: "nl-1".into(),
            host: "vpn.example.com".into(),
            port: 1194,
            proto: "udp".into(),
            ca_pem: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n".into(),
            tls_mode: "tls-crypt".into(),
            tls_key: "-----BEGIN OpenVPN Static key V1-----\nK\n-----END OpenVPN Static key V1-----".into(),
            ..Default::default()
        }
    }

    #[test]
    fn plain_profile() {
        let p = render(&server(), &UserProfile { name: "alice".into(), ..Default::default() }, "now");
        for want in [
            "client\n",
            "proto udp\n",
            "remote vpn.example.com 1194\n",
            "auth-user-pass\n",
            "<ca>\n-----BEGIN",
            "<tls-crypt>\n",
        ] {
            assert!(p.contains(want), "missing {want:?} in\n{p}");
        }
        for absent in
            ["static-challenge", "auth-retry", "push-peer-info", "<key>", "PRIVATE KEY", "<tls-auth>", "IV_SSO"]
        {
            assert!(!p.contains(absent), "{absent:?} should not be in\n{p}");
        }
    }

    #[test]
    fn adapts_to_user_and_server() {
        let s = ServerProfile {
            proto: "tcp".into(),
            tls_mode: "tls-auth".into(),
            key_direction: Some(1),
            extra: vec!["mssfix 1400".into()],
            ..server()
        };
        let u = UserProfile {
            name: "bob".into(),
            static_challenge: true,
            push_peer_info: true,
            setenv: vec![("UV_POLICY".into(), "2".into())],
            cert: Some(("CERT".into(), "-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----".into())),
            ..Default::default()
        };
        let p = render(&s, &u, "now");
        for want in [
            "proto tcp-client\n",
            "key-direction 1\n<tls-auth>",
            "static-challenge \"",
            "setenv UV_POLICY 2\npush-peer-info\n",
            "mssfix 1400\n",
            "<cert>\nCERT\n</cert>",
            "<key>\n",
        ] {
            assert!(p.contains(want), "missing {want:?} in\n{p}");
        }
        assert!(!p.contains("explicit-exit-notify"), "not valid for TCP");
        let d = render(&server(), &UserProfile { dynamic_challenge: true, ..Default::default() }, "now");
        assert!(d.contains("auth-retry interact\n"));
        let o = render(&server(), &UserProfile { sso: true, ..Default::default() }, "now");
        assert!(o.contains("\nsetenv IV_SSO webauth\n"), "{o}");
    }
}
