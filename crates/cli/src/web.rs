//! `tollgate web`: the single sign-on pages (login link and OpenID
//! callback, `[oidc]`) and the users' self-service site (`[self_service]`,
//! site.rs). It serves in the foreground on `--listen`, or on the socket
//! systemd hands it (socket activation), and with `--idle-exit` ends when
//! nobody has used it for that long: nothing runs while nobody uses it.
//!
//! Login state and sessions live in the database (see `tollgate_core::oidc`
//! and `selfservice`); this process keeps nothing between requests but a
//! rate limit, so any number of them (or none) may run.

use crate::oidc_client::Provider;
use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate_core::directory::Answer;
use tollgate_core::http::{self, escape, Head};
use tollgate_core::oidc::{self, get};
use tollgate_core::{units, Config, Store};

/// The cookie that binds a login to the browser that started it.
const COOKIE: &str = "tollgate_sso";
/// How long one connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the login page waits for a link the hook has just handed out
/// (the deferred worker records it a few milliseconds after).
const LINK_GRACE: Duration = Duration::from_secs(3);
/// At most this many connections at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 64;

pub struct WebArgs {
    pub listen: Option<String>,
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
    pub idle_exit: Option<u64>,
}

pub fn run(cfg: Config, args: WebArgs) -> Result<i32> {
    let site = cfg.self_service.as_ref().is_some_and(|s| s.enabled);
    if cfg.oidc.is_none() && !site {
        bail!(
            "nothing to serve: tollgate web serves single sign-on ([oidc]) and the self-service site \
             ([self_service], enabled); the config has neither"
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(Arc::new(tls_config(c, k)?)),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    let listener = match (systemd_socket()?, &args.listen) {
        (Some(l), _) => l,
        (None, Some(addr)) => TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?,
        (None, None) => bail!("--listen ADDR is needed (or start tollgate web by a systemd socket)"),
    };
    // Opened once to fail early on a missing or old database.
    Store::open_hook(&cfg)?;
    let here = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut serves = vec![];
    if let Some(o) = &cfg.oidc {
        serves.push(format!("{} and {}", http::url_path(&o.login_url), http::url_path(&o.redirect_url)));
    }
    if site {
        serves.push("the self-service site (/, /api/v1/)".into());
    }
    eprintln!("tollgate web: serving {} on {here}{}", serves.join(" and "), if tls.is_some() { " (TLS)" } else { "" });
    let shared = Arc::new(Shared { cfg, busy: AtomicUsize::new(0), limiter: crate::site::Limiter::default() });
    let idle = args.idle_exit.map(Duration::from_secs);
    loop {
        if let Some(idle) = idle {
            if !wait_readable(&listener, idle) && shared.busy.load(Ordering::SeqCst) == 0 {
                eprintln!("tollgate web: idle for {}s, exiting", idle.as_secs());
                return Ok(0);
            }
        }
        let (stream, peer) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                eprintln!("tollgate web: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        while shared.busy.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            std::thread::sleep(Duration::from_millis(20));
        }
        shared.busy.fetch_add(1, Ordering::SeqCst);
        let (shared, tls) = (shared.clone(), tls.clone());
        std::thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
            let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
            let r = match tls {
                Some(t) => rustls::ServerConnection::new(t)
                    .map_err(|e| anyhow!("TLS: {e}"))
                    .and_then(|c| serve(&shared, &mut rustls::StreamOwned::new(c, stream), peer.ip(), true)),
                None => {
                    let mut s = stream;
                    serve(&shared, &mut s, peer.ip(), false)
                }
            };
            if let Err(e) = r {
                eprintln!("tollgate web: {peer}: {}", tollgate_core::names::one_line(&format!("{e:#}"), 200));
            }
            shared.busy.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

struct Shared {
    cfg: Config,
    busy: AtomicUsize,
    limiter: crate::site::Limiter,
}

/// The listening socket systemd passed (LISTEN_FDS, fd 3), if any.
fn systemd_socket() -> Result<Option<TcpListener>> {
    let ours = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let fds: usize = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    if !ours || fds == 0 {
        return Ok(None);
    }
    if fds != 1 {
        bail!("systemd passed {fds} sockets; tollgate web takes one (ListenStream=)");
    }
    // SAFETY: systemd passes fd 3 open, a listening socket, ours alone.
    let l = unsafe { TcpListener::from_raw_fd(3) };
    l.local_addr().context("the socket systemd passed is not a TCP socket")?;
    Ok(Some(l))
}

/// Whether a connection arrives within `timeout`.
fn wait_readable(l: &TcpListener, timeout: Duration) -> bool {
    let mut p = libc::pollfd { fd: l.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> Result<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect())
        .map_err(|e| anyhow!("cannot read --tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        bail!("--tls-cert {} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow!("cannot read --tls-key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("TLS certificate and key: {e}"))
}

/// A response: status, extra headers, body and its type.
pub struct Page {
    status: u16,
    headers: Vec<(String, String)>,
    content_type: &'static str,
    body: String,
}

impl Page {
    /// A page of the self-service site's plain layout around `body`.
    pub fn html(status: u16, title: &str, body: maud::Markup) -> Page {
        page(status, title, &body.into_string())
    }

    /// A whole HTML document.
    pub fn html_markup(status: u16, doc: maud::Markup) -> Page {
        Page { status, headers: vec![], content_type: "text/html; charset=utf-8", body: doc.into_string() }
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Page {
        let body = serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
        Page { status, headers: vec![], content_type: "application/json", body }
    }

    /// 303 to a path of this site.
    pub fn redirect(to: &str) -> Page {
        Page {
            status: 303,
            headers: vec![("Location".into(), to.into())],
            content_type: "text/plain",
            body: String::new(),
        }
    }

    /// An OpenVPN profile to save as `name`.
    pub fn file(text: String, name: &str) -> Page {
        let disposition = format!("attachment; filename=\"{}\"", name.replace(['"', '\\'], "_"));
        Page {
            status: 200,
            headers: vec![("Content-Disposition".into(), disposition)],
            content_type: "application/x-openvpn-profile",
            body: text,
        }
    }

    pub fn with(mut self, header: (String, String)) -> Page {
        self.headers.push(header);
        self
    }
}

fn page(status: u16, title: &str, body_html: &str) -> Page {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>body{{font-family:sans-serif;max-width:36em;margin:3em auto;padding:0 1em;\
         line-height:1.5}}dt{{font-weight:bold}}button{{font-size:1.1em;padding:.4em 1.2em}}</style></head>\
         <body><h1>{t}</h1>\n{body_html}\n</body></html>\n",
        t = escape(title)
    );
    Page { status, headers: vec![], content_type: "text/html; charset=utf-8", body }
}

fn serve(shared: &Shared, s: &mut (impl Read + Write), peer: std::net::IpAddr, tls: bool) -> Result<()> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    let (head, start) = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        match http::parse_head(&buf) {
            Ok(Some(h)) => break h,
            Ok(None) => continue,
            Err(e) => return respond(s, page(400, "Bad request", &escape(&e)), tls, false),
        }
    };
    let mut body = buf[start..].to_vec();
    while body.len() < head.content_length {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(head.content_length);
    let p = route(shared, &head, &body, peer, tls);
    respond(s, p, tls, head.method == "HEAD")
}

fn respond(s: &mut impl Write, p: Page, tls: bool, head_only: bool) -> Result<()> {
    let reason = match p.status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    };
    // No script, no frame, no outside resource; forms post only here.
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n\
         X-Content-Type-Options: nosniff\r\nContent-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'\r\n\
         Connection: close\r\n",
        p.status,
        p.content_type,
        p.body.len()
    );
    if tls {
        out.push_str("Strict-Transport-Security: max-age=31536000\r\n");
    }
    for (k, v) in &p.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    s.write_all(out.as_bytes())?;
    if !head_only {
        s.write_all(p.body.as_bytes())?;
    }
    s.flush()?;
    Ok(())
}

fn route(shared: &Shared, head: &Head, body: &[u8], peer: std::net::IpAddr, tls: bool) -> Page {
    let cfg = &shared.cfg;
    if head.path == "/health" && head.method == "GET" {
        return Page { status: 200, headers: vec![], content_type: "text/plain", body: "ok\n".into() };
    }
    let sso = cfg
        .oidc
        .as_ref()
        .is_some_and(|o| head.path == http::url_path(&o.login_url) || head.path == http::url_path(&o.redirect_url));
    if !sso {
        if let Some(site) = cfg.self_service.as_ref().filter(|s| s.enabled && crate::site::owns(&head.path)) {
            let client = crate::site::client_of(site, peer, head);
            return crate::site::route(cfg, &shared.limiter, &crate::site::Req { head, body, client, tls });
        }
    }
    let Some(o) = &cfg.oidc else { return page(404, "Not found", "") };
    let (login, callback) = (http::url_path(&o.login_url), http::url_path(&o.redirect_url));
    let r = match (head.method.as_str(), head.path.as_str()) {
        ("GET", p) if p == login => oidc::parse_form(&head.query).map(|q| login_page(cfg, &q)),
        ("POST", p) if p == login => std::str::from_utf8(body)
            .map_err(|_| "form is not UTF-8".to_string())
            .and_then(oidc::parse_form)
            .map(|q| go_to_provider(cfg, &q, tls)),
        ("GET", p) if p == callback => oidc::parse_form(&head.query).map(|q| callback_page(cfg, &q, &head.cookies)),
        (_, p) if p == login || p == callback => Ok(page(405, "Method not allowed", "")),
        _ => Ok(page(404, "Not found", "")),
    };
    r.unwrap_or_else(|e| page(400, "Bad request", &escape(&e)))
}

const STALE: &str = "<p>This login link is no longer valid: it was already used, it expired, or it is not one \
    of ours. Connect again to get a new link.</p>";

/// The link's first page: which login this is, and a button to go on.
fn login_page(cfg: &Config, q: &[(String, String)]) -> Page {
    let Some(link) = get(q, "l").filter(|l| oidc::is_secret(l)) else {
        return page(410, "Login link not valid", STALE);
    };
    let found = match Store::open_hook(cfg) {
        Err(e) => return unavailable(&format!("{e:#}")),
        Ok(store) => match await_pending(&store, link) {
            Ok(p) => p,
            Err(page) => return page,
        },
    };
    if found.started {
        return page(410, "Login link already used", STALE);
    }
    let left = (found.expires_at - units::now()).max(0);
    let user = if found.username.is_empty() { "(the account you sign in with)".to_string() } else { found.username };
    let body = format!(
        "<p>A VPN client is waiting for you to sign in.</p>\n<dl>\
         <dt>VPN server</dt><dd>{server}</dd><dt>Account</dt><dd>{user}</dd>\
         <dt>Connecting from</dt><dd>{ip}</dd><dt>Client</dt><dd>{platform}</dd>\
         <dt>Link valid for</dt><dd>{left} s</dd></dl>\n\
         <p><strong>If you did not just start this VPN connection yourself, close this page:</strong> \
         someone may be trying to use your account.</p>\n\
         <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"l\" value=\"{link}\">\
         <button type=\"submit\">Continue to sign in</button></form>",
        server = escape(&found.server),
        user = escape(&user),
        ip = escape(&found.ip),
        platform = escape(found.platform.as_deref().unwrap_or("unknown")),
        action = escape(http::url_path(&cfg.oidc.as_ref().map(|o| o.login_url.clone()).unwrap_or_default())),
        link = escape(link),
    );
    page(200, "VPN sign-in", &body)
}

/// The pending login of a link, waiting up to LINK_GRACE for one the hook
/// has just handed out (its worker records it a moment later); else the
/// page to answer with.
fn await_pending(store: &Store, link: &str) -> Result<oidc::Pending, Page> {
    let until = Instant::now() + LINK_GRACE;
    loop {
        match oidc::pending(store, link, units::now()) {
            Err(e) => return Err(unavailable(&format!("{e:#}"))),
            Ok(Some(p)) => return Ok(p),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => return Err(page(410, "Login link not valid", STALE)),
        }
    }
}

fn unavailable(detail: &str) -> Page {
    eprintln!("tollgate web: {}", tollgate_core::names::one_line(detail, 300));
    page(502, "Sign-in unavailable", "<p>The VPN's sign-in service has a problem. Try again later.</p>")
}

/// "Continue": bind the login to this browser and a fresh state, and send
/// the browser to the provider.
fn go_to_provider(cfg: &Config, q: &[(String, String)], tls: bool) -> Page {
    let o = cfg.oidc.as_ref().expect("routed with [oidc]");
    let Some(link) = get(q, "l").filter(|l| oidc::is_secret(l)) else {
        return page(410, "Login link not valid", STALE);
    };
    let store = match Store::open_hook(cfg) {
        Ok(s) => s,
        Err(e) => return unavailable(&format!("{e:#}")),
    };
    match await_pending(&store, link) {
        Ok(p) if !p.started => {}
        Ok(_) => return page(410, "Login link not valid", STALE),
        Err(page) => return page,
    }
    // The provider first: if it cannot be reached, the waiting login is
    // refused now rather than at its timeout.
    let provider = match Provider::discover(o) {
        Ok(p) => p,
        Err(e) => {
            let reason = format!("{e:#}");
            let _ = oidc::finish_link(
                &store,
                link,
                &Answer::Unavailable { server: o.issuer.clone(), reason: reason.clone() },
            );
            eprintln!("tollgate web: identity provider {}: {}", o.issuer, tollgate_core::names::one_line(&reason, 300));
            return page(
                502,
                "Identity provider unavailable",
                "<p>The identity provider cannot be reached, so this VPN login was refused. Try again later.</p>",
            );
        }
    };
    let (state, browser, nonce, verifier) =
        (oidc::new_secret(), oidc::new_secret(), oidc::new_secret(), oidc::new_secret() + &oidc::new_secret());
    match oidc::begin(&store, link, &state, &browser, &nonce, &verifier, units::now()) {
        Ok(true) => {}
        Ok(false) => return page(410, "Login link not valid", STALE),
        Err(e) => return unavailable(&format!("{e:#}")),
    }
    let secure = if tls || o.redirect_url.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={browser}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        http::url_path(&o.redirect_url),
        o.login_timeout_secs
    );
    let to = oidc::authorize_url(&provider.authorization_endpoint, o, &state, &nonce, &verifier);
    Page::redirect(&to).with(("Set-Cookie".into(), cookie))
}

/// The provider sent the browser back: check it is the browser that
/// started this login, redeem the code, verify the ID token, store what it
/// proves.
fn callback_page(cfg: &Config, q: &[(String, String)], cookies: &str) -> Page {
    use subtle::ConstantTimeEq;
    let o = cfg.oidc.as_ref().expect("routed with [oidc]");
    let Some(state) = get(q, "state").filter(|s| oidc::is_secret(s)) else {
        return page(400, "Sign-in not valid", "<p>This sign-in answer is not one of ours.</p>");
    };
    let store = match Store::open_hook(cfg) {
        Ok(s) => s,
        Err(e) => return unavailable(&format!("{e:#}")),
    };
    let started = match oidc::by_state(&store, state, units::now()) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return page(
                410,
                "Sign-in not valid",
                "<p>This sign-in was already used or has expired. Connect again to get a new link.</p>",
            )
        }
        Err(e) => return unavailable(&format!("{e:#}")),
    };
    let browser = http::cookie(cookies, COOKIE).unwrap_or_default();
    if !bool::from(oidc::hash(browser).as_bytes().ct_eq(started.browser_hash.as_bytes())) {
        return page(
            403,
            "Sign-in not valid",
            "<p>This sign-in was started in another browser. Open the login link in this browser, or connect again.</p>",
        );
    }
    let mut refresh_token = None;
    let mut claimed = None;
    let answer = if let Some(err) = get(q, "error") {
        let desc = get(q, "error_description").unwrap_or_default();
        Answer::Reject { reason: format!("the provider answered {err}: {}", tollgate_core::names::one_line(desc, 120)) }
    } else if let Some(code) = get(q, "code") {
        match Provider::discover(o).and_then(|p| p.redeem(o, code, &started.verifier, &started.nonce)) {
            Ok(t) => {
                let a = oidc::identity(&t.claims, o, &started.username);
                let accepted = matches!(a, Answer::Accept { .. });
                refresh_token = t.refresh_token.filter(|_| accepted);
                // A client that sent no username: whoever signed in.
                claimed = oidc::claimed_name(&t.claims, o).filter(|_| accepted).map(str::to_string);
                a
            }
            Err(e) => Answer::Unavailable { server: o.issuer.clone(), reason: format!("{e:#}") },
        }
    } else {
        Answer::Reject { reason: "the provider answered neither a code nor an error".into() }
    };
    match oidc::finish(&store, state, &answer, refresh_token.as_deref(), claimed.as_deref()) {
        Ok(true) => {}
        Ok(false) => return page(410, "Sign-in not valid", "<p>This sign-in was already used.</p>"),
        Err(e) => return unavailable(&format!("{e:#}")),
    }
    match &answer {
        Answer::Accept { .. } => page(
            200,
            "Signed in",
            "<p>You are signed in. Your VPN client connects in a few seconds; you can close this page.</p>",
        ),
        Answer::NotInGroup { .. } => page(
            403,
            "Not allowed",
            "<p>You signed in, but your account is not in a group allowed to use this VPN.</p>",
        ),
        Answer::Unavailable { reason, .. } => {
            eprintln!("tollgate web: identity provider {}: {}", o.issuer, tollgate_core::names::one_line(reason, 300));
            page(502, "Sign-in failed", "<p>The identity provider's answer could not be checked. Try again later.</p>")
        }
        Answer::Reject { reason } => page(403, "Sign-in refused", &format!("<p>{}</p>", escape(reason))),
        Answer::Challenge { .. } => page(500, "Sign-in failed", ""),
    }
}
