//! The users' self-service site in `tollgate web` (`[self_service]`):
//! sign-in, profile downloads, plan and usage, sessions and recent logins,
//! second-factor enrolment, devices and password, and the same data as a
//! JSON API under /api/v1 for a user's session cookie or an admin's token.
//!
//! Pages are HTML without JavaScript (maud escapes every value it is
//! given); the rules (sign-in, sessions, tokens) are tollgate-core's
//! `selfservice`. Like the single sign-on pages, nothing is kept in the
//! process between requests but a per-address rate limit.

use crate::web::Page;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use subtle::ConstantTimeEq;
use tollgate_core::accounting::{self, SessionFilter};
use tollgate_core::config::SelfService;
use tollgate_core::http::Head;
use tollgate_core::method::AuthMethod;
use tollgate_core::oidc::{get, is_secret, new_secret, parse_form};
use tollgate_core::selfservice::{self as ss, Scope, SignIn, SignedIn, WebSession};
use tollgate_core::units::{format_size, format_size_of, format_time, now};
use tollgate_core::{devices, events, password, profile, servers, totp, users, Config, Store};

/// The session cookie.
const COOKIE: &str = "tollgate_site";
/// The sign-in form's anti-forgery cookie (before there is a session).
const PRE_COOKIE: &str = "tollgate_pre";
/// Sign-in attempts, password changes and refused API tokens one address
/// may make per window before it is answered 429 (the account lockout and
/// the per-address block of `[lockout]` apply as well).
const RATE_LIMIT: u32 = 20;
const RATE_WINDOW: i64 = 60;

/// Attempts per client address in the current window.
#[derive(Default)]
pub struct Limiter {
    hits: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

/// Pure: one more attempt in a fixed window. The new state, and whether it
/// is allowed.
fn count_attempt(state: Option<(i64, u32)>, now: i64) -> ((i64, u32), bool) {
    match state {
        Some((start, n)) if now - start < RATE_WINDOW => ((start, n + 1), n < RATE_LIMIT),
        _ => ((now, 1), true),
    }
}

impl Limiter {
    fn allow(&self, ip: IpAddr, now: i64) -> bool {
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        if hits.len() > 10_000 {
            hits.retain(|_, (start, _)| now - *start < RATE_WINDOW);
        }
        let (next, ok) = count_attempt(hits.get(&ip).copied(), now);
        hits.insert(ip, next);
        ok
    }
}

/// One request, as the site sees it.
pub struct Req<'a> {
    pub head: &'a Head,
    pub body: &'a [u8],
    /// The client: the peer, or the address a trusted proxy forwarded.
    pub client: IpAddr,
    pub tls: bool,
}

/// Whether `path` is the site's (the single sign-on pages are routed first).
pub fn owns(path: &str) -> bool {
    path == "/" || ["/signin", "/signout", "/account", "/download/", "/api/v1/"].iter().any(|p| path.starts_with(p))
}

/// The client's address: a trusted proxy's X-Forwarded-For, else the peer.
pub fn client_of(cfg: &SelfService, peer: IpAddr, head: &Head) -> IpAddr {
    match head.forwarded_for.as_deref().and_then(|a| a.parse().ok()) {
        Some(fwd) if cfg.trusted_proxies.contains(&peer) => fwd,
        _ => peer,
    }
}

/// The whole site: a page for any of its paths.
pub fn route(cfg: &Config, limiter: &Limiter, r: &Req) -> Page {
    let Some(ss_cfg) = cfg.self_service.as_ref().filter(|s| s.enabled) else {
        return Page::html(404, "Not found", html! { p { "There is no such page." } });
    };
    let api = r.head.path.starts_with("/api/");
    let mut store = match Store::open_hook(cfg) {
        Ok(s) => s,
        Err(e) => return unavailable(api, &format!("{e:#}")),
    };
    let site = Site {
        cfg,
        ss: ss_cfg,
        limiter,
        r,
        secure: r.tls || ss_cfg.public_url.as_deref().is_some_and(|u| u.starts_with("https://")),
    };
    let result = if api { site.api(&mut store) } else { site.page(&mut store) };
    result.unwrap_or_else(|e| unavailable(api, &format!("{e:#}")))
}

fn unavailable(api: bool, detail: &str) -> Page {
    eprintln!("tollgate web: {}", tollgate_core::names::one_line(detail, 300));
    match api {
        true => Page::json(503, &json!({ "error": "the service has a problem; try again later" })),
        false => Page::html(
            503,
            "Unavailable",
            html! { p { "The VPN's self-service site has a problem. Try again later." } },
        ),
    }
}

struct Site<'a> {
    cfg: &'a Config,
    ss: &'a SelfService,
    limiter: &'a Limiter,
    r: &'a Req<'a>,
    /// Cookies are Secure (the site is reached over HTTPS).
    secure: bool,
}

type R = anyhow::Result<Page>;

impl Site<'_> {
    fn cookie(&self, name: &str) -> Option<&str> {
        tollgate_core::http::cookie(&self.r.head.cookies, name)
    }

    fn set_cookie(&self, name: &str, value: &str, path: &str, max_age: i64) -> (String, String) {
        let secure = if self.secure { "; Secure" } else { "" };
        (
            "Set-Cookie".into(),
            format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"),
        )
    }

    /// The signed-in session, if the cookie names a live one.
    fn session(&self, store: &Store) -> anyhow::Result<Option<(WebSession, String)>> {
        let Some(secret) = self.cookie(COOKIE) else { return Ok(None) };
        Ok(ss::session(&store.conn, secret, now())?.map(|s| (s, secret.to_string())))
    }

    fn form(&self) -> Vec<(String, String)> {
        std::str::from_utf8(self.r.body).ok().and_then(|b| parse_form(b).ok()).unwrap_or_default()
    }

    /// The form carries this session's anti-forgery token.
    fn csrf_ok(&self, form: &[(String, String)], s: &WebSession) -> bool {
        let sent = get(form, "csrf").unwrap_or_default();
        bool::from(sent.as_bytes().ct_eq(s.csrf.as_bytes()))
    }

    fn page(&self, store: &mut Store) -> R {
        let path = self.r.head.path.as_str();
        let method = self.r.head.method.as_str();
        if path == "/signin" {
            return match method {
                "GET" | "HEAD" => self.signin_form(store, None, 200),
                "POST" => self.signin(store),
                _ => Ok(Page::html(405, "Method not allowed", html! {})),
            };
        }
        let Some((s, secret)) = self.session(store)? else {
            return Ok(match method {
                "GET" | "HEAD" => Page::redirect("/signin"),
                _ => Page::html(
                    403,
                    "Signed out",
                    html! { p { "Your session has ended. " a href="/signin" { "Sign in" } " again." } },
                ),
            });
        };
        if method == "POST" {
            let form = self.form();
            if !self.csrf_ok(&form, &s) {
                return Ok(Page::html(
                    403,
                    "Form expired",
                    html! {
                        p { "This form is no longer valid (it came from another page or an old session). " a href="/" { "Start again" } "." }
                    },
                ));
            }
            return match path {
                "/signout" => {
                    ss::end_session(&store.conn, &secret)?;
                    Ok(Page::redirect("/signin?m=signed-out").with(self.set_cookie(COOKIE, "", "/", 0)))
                }
                "/account/totp/new" if self.ss.enrol => {
                    ss::set_pending_totp(&store.conn, &secret, Some(&totp::new_secret()))?;
                    Ok(Page::redirect("/account#second-factor"))
                }
                "/account/totp/confirm" if self.ss.enrol => self.confirm_totp(store, &s, &secret, &form),
                "/account/totp/cancel" if self.ss.enrol => {
                    ss::set_pending_totp(&store.conn, &secret, None)?;
                    Ok(Page::redirect("/account#second-factor"))
                }
                "/account/devices/remove" if self.ss.remove_devices => {
                    let hw = get(&form, "device").unwrap_or_default();
                    let removed = devices::remove(&store.conn, s.user_id, hw)?;
                    if removed {
                        eprintln!("tollgate web: {} removed device {hw} from {}", s.user, self.r.client);
                    }
                    Ok(Page::redirect(if removed { "/account?m=device-removed#devices" } else { "/account#devices" }))
                }
                "/account/password" if self.ss.password_change => self.change_password(store, &s, &form),
                _ => Ok(Page::html(404, "Not found", html! { p { "There is no such form." } })),
            };
        }
        if !matches!(method, "GET" | "HEAD") {
            return Ok(Page::html(405, "Method not allowed", html! {}));
        }
        match path {
            "/" => self.overview(store, &s),
            "/account" => self.account(store, &s),
            p if p.starts_with("/download/") => {
                let server = &p["/download/".len()..];
                self.download(store, &s.user, s.user_id, server)
            }
            _ => Ok(Page::html(404, "Not found", html! { p { "There is no such page." } })),
        }
    }

    fn layout(&self, title: &str, s: Option<&WebSession>, body: Markup) -> Markup {
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · VPN" }
                    style { (PreEscaped(CSS)) }
                }
                body {
                    @if let Some(s) = s {
                        header {
                            nav {
                                a href="/" { "Overview" }
                                " "
                                a href="/account" { "Account" }
                            }
                            form method="post" action="/signout" class="inline" {
                                span class="who" { (s.user) }
                                input type="hidden" name="csrf" value=(s.csrf);
                                button type="submit" class="link" { "Sign out" }
                            }
                        }
                    }
                    main {
                        h1 { (title) }
                        @if let Some(m) = get_message(&self.r.head.query) {
                            p class="note" role="status" { (m) }
                        }
                        (body)
                    }
                }
            }
        }
    }

    fn signin_form(&self, store: &Store, error: Option<&str>, status: u16) -> R {
        if error.is_none() && self.session(store)?.is_some() {
            return Ok(Page::redirect("/"));
        }
        // The form's token is the cookie's: a page on another site cannot
        // read it, so cannot post a sign-in of its own choosing.
        let pre = self.cookie(PRE_COOKIE).filter(|v| is_secret(v)).map(str::to_string).unwrap_or_else(new_secret);
        let body = html! {
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            form method="post" action="/signin" class="stack" {
                input type="hidden" name="pre" value=(pre);
                label { "Username" input name="username" autocomplete="username" autocapitalize="none" required; }
                label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                label {
                    "Authenticator code " small { "(if you use one)" }
                    input name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="8" pattern="[0-9]*";
                }
                button type="submit" { "Sign in" }
            }
        };
        Ok(Page::html_markup(status, self.layout("Sign in", None, body))
            .with(self.set_cookie(PRE_COOKIE, &pre, "/signin", 3600)))
    }

    fn signin(&self, store: &mut Store) -> R {
        let t = now();
        if !self.limiter.allow(self.r.client, t) {
            return Ok(Page::html(
                429,
                "Too many attempts",
                html! { p { "Too many sign-in attempts from your address. Wait a minute and try again." } },
            ));
        }
        let form = self.form();
        let sent = get(&form, "pre").unwrap_or_default();
        let cookie = self.cookie(PRE_COOKIE).unwrap_or_default();
        if cookie.is_empty() || !bool::from(sent.as_bytes().ct_eq(cookie.as_bytes())) {
            return self.signin_form(store, Some("This sign-in form expired. Please try again."), 400);
        }
        let ip = self.r.client.to_string();
        let attempt = SignIn {
            username: get(&form, "username").unwrap_or_default().trim(),
            password: get(&form, "password").unwrap_or_default(),
            code: get(&form, "code").unwrap_or_default().trim(),
            ip: &ip,
            now: t,
        };
        match ss::sign_in(store, self.cfg, &attempt)? {
            SignedIn::User { id, name } => {
                let secret = ss::open_session(&store.conn, id, &ip, t, self.ss.session_secs)?;
                eprintln!("tollgate web: {name} signed in from {ip}");
                Ok(Page::redirect("/")
                    .with(self.set_cookie(COOKIE, &secret, "/", self.ss.session_secs))
                    .with(self.set_cookie(PRE_COOKIE, "", "/signin", 0)))
            }
            SignedIn::Refused(d) => {
                eprintln!(
                    "tollgate web: sign-in of {} from {ip} refused: {}",
                    tollgate_core::names::for_log(attempt.username),
                    d.log_reason()
                );
                // One answer for every refusal: it tells nobody which
                // names exist or what was wrong.
                self.signin_form(store, Some(REFUSED), 401)
            }
            SignedIn::Unavailable(why) => {
                eprintln!(
                    "tollgate web: sign-in from {ip}: directory unavailable: {}",
                    tollgate_core::names::one_line(&why, 300)
                );
                self.signin_form(store, Some("Your password could not be checked right now. Try again later."), 503)
            }
        }
    }

    fn overview(&self, store: &Store, s: &WebSession) -> R {
        let db = &store.conn;
        let t = now();
        let servers = servers::usable_by(db, s.user_id)?;
        let usage = accounting::usage(db, Some(&s.user), t)?.into_iter().next();
        let open =
            accounting::sessions(db, &SessionFilter { open_only: true, user: Some(&s.user), server: None, limit: 20 })?;
        let recent = accounting::sessions(
            db,
            &SessionFilter { open_only: false, user: Some(&s.user), server: None, limit: 10 },
        )?;
        let logins = events::recent(db, Some(&s.user), 10)?;
        let body = html! {
            section id="servers" {
                h2 { "VPN servers" }
                @if servers.is_empty() {
                    p { "Your account may not use any server yet." }
                } @else {
                    ul class="servers" {
                        @for name in &servers {
                            li {
                                strong { (name) }
                                @if self.ss.download {
                                    " " a href={ "/download/" (name) } download { "Download profile" }
                                }
                            }
                        }
                    }
                    @if self.ss.download {
                        p class="hint" { "Import the profile into OpenVPN Connect or OpenVPN 2.6, and sign in with the same username and password." }
                    }
                }
            }
            @if let Some(u) = &usage {
                section id="usage" {
                    h2 { "Plan and usage" }
                    (usage_table(u))
                }
            }
            section id="sessions" {
                h2 { "Connections" }
                @if open.is_empty() { p { "No connection is open now." } }
                (sessions_table(&recent))
            }
            section id="logins" {
                h2 { "Recent sign-ins" }
                @if logins.is_empty() { p { "None yet." } } @else {
                    div class="scroll" { table {
                        thead { tr { th { "Time (UTC)" } th { "Address" } th { "Where" } th { "Result" } } }
                        tbody { @for e in &logins { tr {
                            td { (format_time(e.at)) }
                            td { (e.ip.as_deref().unwrap_or("-")) }
                            td { (e.server.as_deref().unwrap_or("-")) }
                            td { (login_result(&e.result)) }
                        } } }
                    } }
                }
            }
        };
        Ok(Page::html_markup(200, self.layout("Your VPN", Some(s), body)))
    }

    fn account(&self, store: &Store, s: &WebSession) -> R {
        let db = &store.conn;
        let active = users::totp_active(db, s.user_id)?;
        let method = tollgate_core::auth::method_of(store, self.cfg, &s.user)?;
        let local = method == AuthMethod::Local && !users::has_no_password(db, s.user_id)?;
        let devs = devices::list(db, s.user_id)?;
        let binding = devices::user_binding(db, s.user_id)?.unwrap_or(self.cfg.devices.binding);
        let qr = s.totp_pending.as_deref().map(|secret| {
            let uri = totp::uri(&self.cfg.mfa.issuer, &s.user, secret);
            (uri.clone(), qr_svg(&uri), secret.to_string())
        });
        let body = html! {
            section id="second-factor" {
                h2 { "Second factor" }
                p {
                    @if active { "Your authenticator app is on: every sign-in asks for its code." }
                    @else { "No authenticator app is set up: your password alone signs you in." }
                }
                @if self.ss.enrol {
                    @if let Some((uri, svg, secret)) = &qr {
                        p { "Scan this code with your authenticator app (or enter the key by hand), then type the 6-digit code it shows." }
                        div class="qr" { (PreEscaped(svg)) }
                        p { "Key: " code class="secret" { (group4(secret)) } }
                        p class="hint" { a href=(uri) { "Open in an authenticator app on this device" } }
                        form method="post" action="/account/totp/confirm" class="stack" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            label { "Code from the app" input name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="8" pattern="[0-9]*" required; }
                            button type="submit" { "Turn on" }
                        }
                        @if active { p class="hint" { "Your current app keeps working until the new one is turned on." } }
                        form method="post" action="/account/totp/cancel" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" class="link" { "Cancel" }
                        }
                    } @else {
                        form method="post" action="/account/totp/new" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" { @if active { "Replace authenticator" } @else { "Set up authenticator" } }
                        }
                    }
                }
            }
            @if binding != devices::Binding::Off || !devs.is_empty() {
                section id="devices" {
                    h2 { "Devices" }
                    @if devs.is_empty() { p { "No device is registered yet: the first one you connect from will be." } } @else {
                        div class="scroll" { table {
                            thead { tr { th { "Device" } th { "State" } th { "Last seen (UTC)" } @if self.ss.remove_devices { th {} } } }
                            tbody { @for d in &devs { tr {
                                td { code { (d.hwaddr) } }
                                td { @if d.approved { "approved" } @else { "waiting for the admin" } }
                                td { (d.last_seen.map(format_time).unwrap_or_else(|| "-".into())) }
                                @if self.ss.remove_devices { td {
                                    form method="post" action="/account/devices/remove" {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        input type="hidden" name="device" value=(d.hwaddr);
                                        button type="submit" class="link" { "Remove" }
                                    }
                                } }
                            } } }
                        } }
                    }
                }
            }
            @if local && self.ss.password_change {
                section id="password" {
                    h2 { "Password" }
                    form method="post" action="/account/password" class="stack" {
                        input type="hidden" name="csrf" value=(s.csrf);
                        label { "Current password" input type="password" name="current" autocomplete="current-password" required; }
                        label { "New password " small { "(at least 8 characters)" } input type="password" name="new" autocomplete="new-password" minlength="8" required; }
                        label { "New password again" input type="password" name="again" autocomplete="new-password" minlength="8" required; }
                        button type="submit" { "Change password" }
                    }
                    p class="hint" { "Changing it signs you out everywhere; open VPN connections stay up." }
                }
            }
        };
        Ok(Page::html_markup(200, self.layout("Account", Some(s), body)))
    }

    fn confirm_totp(&self, store: &Store, s: &WebSession, secret: &str, form: &[(String, String)]) -> R {
        let Some(pending) = s.totp_pending.as_deref() else { return Ok(Page::redirect("/account#second-factor")) };
        let code = get(form, "code").unwrap_or_default().trim();
        let t = now();
        match totp::decode_secret(pending).and_then(|key| totp::verify(&key, code, t, None)) {
            Some(step) => {
                users::totp_confirm(&store.conn, s.user_id, pending, step, t)?;
                ss::set_pending_totp(&store.conn, secret, None)?;
                eprintln!("tollgate web: {} turned on a new authenticator from {}", s.user, self.r.client);
                Ok(Page::redirect("/account?m=totp-on#second-factor"))
            }
            None => Ok(Page::redirect("/account?m=totp-bad#second-factor")),
        }
    }

    fn change_password(&self, store: &mut Store, s: &WebSession, form: &[(String, String)]) -> R {
        let t = now();
        if !self.limiter.allow(self.r.client, t) {
            return Ok(Page::html(
                429,
                "Too many attempts",
                html! { p { "Too many attempts from your address. Wait a minute and try again." } },
            ));
        }
        let (current, new, again) = (
            get(form, "current").unwrap_or_default(),
            get(form, "new").unwrap_or_default(),
            get(form, "again").unwrap_or_default(),
        );
        // One read gives the hash and what decides the auth method.
        let loaded = tollgate_core::auth::load(store, &s.user, ss::SITE, t)?;
        if loaded.method(self.cfg)?.0 != AuthMethod::Local
            || !password::verify(loaded.password_hash.as_deref(), current, self.cfg.argon2)
        {
            return Ok(Page::redirect("/account?m=pw-wrong#password"));
        }
        if new != again {
            return Ok(Page::redirect("/account?m=pw-differ#password"));
        }
        if password::check_new(new).is_err() {
            return Ok(Page::redirect("/account?m=pw-rule#password"));
        }
        let hash = password::hash(new, self.cfg.argon2)?;
        // A new password ends every session of the account, this one too.
        users::change(&store.conn, s.user_id, users::Change::PasswordHash(&hash), t)?;
        eprintln!("tollgate web: {} changed their password from {}", s.user, self.r.client);
        Ok(Page::redirect("/signin?m=password-changed").with(self.set_cookie(COOKIE, "", "/", 0)))
    }

    /// The profile gen-ovpn makes, as a download.
    fn download(&self, store: &Store, user: &str, user_id: i64, server: &str) -> R {
        if !self.ss.download {
            return Ok(Page::html(
                403,
                "Not available",
                html! { p { "Profiles are not offered here: ask your VPN's admin." } },
            ));
        }
        match self.profile(store, user, user_id, server)? {
            Some(file) => {
                eprintln!("tollgate web: {user} downloaded the profile for {server} from {}", self.r.client);
                Ok(file)
            }
            None => Ok(Page::html(404, "Not found", html! { p { "Your account may not use that server." } })),
        }
    }

    /// The profile gen-ovpn makes for `user` on `server`, as a file named
    /// USER-SERVER.ovpn; None when the user may not use that server.
    fn profile(&self, store: &Store, user: &str, user_id: i64, server: &str) -> anyhow::Result<Option<Page>> {
        if !servers::usable_by(&store.conn, user_id)?.iter().any(|n| n == server) {
            return Ok(None);
        }
        let t = now();
        let (srv, up) = profile::load(store, user, server, self.cfg, t)?;
        Ok(Some(Page::file(profile::render(&srv, &up, &format_time(t)), &format!("{user}-{server}.ovpn"))))
    }

    fn api(&self, store: &mut Store) -> R {
        let h = self.r.head;
        if h.method != "GET" && h.method != "HEAD" {
            return Ok(Page::json(405, &json!({ "error": "the API only reads: use GET" })));
        }
        let t = now();
        // Who asks: an admin token (any user, within its scopes), else a
        // signed-in user (themselves only).
        let (who, scopes, own): (String, Vec<Scope>, Option<String>) = match &h.bearer {
            Some(token) => match ss::token_check(&store.conn, token, t)? {
                Some((name, scopes)) => (format!("token {name}"), scopes, None),
                None => {
                    if !self.limiter.allow(self.r.client, t) {
                        return Ok(Page::json(429, &json!({ "error": "too many refused requests: wait a minute" })));
                    }
                    return Ok(Page::json(
                        401,
                        &json!({ "error": "the token is not valid (unknown, revoked or expired)" }),
                    )
                    .with(("WWW-Authenticate".into(), "Bearer".into())));
                }
            },
            None => match self.session(store)? {
                Some((s, _)) => (s.user.clone(), Scope::ALL.to_vec(), Some(s.user)),
                None => {
                    return Ok(Page::json(
                        401,
                        &json!({ "error": "sign in, or send an admin token (Authorization: Bearer)" }),
                    )
                    .with(("WWW-Authenticate".into(), "Bearer".into())))
                }
            },
        };
        let Some(rest) = h.path.strip_prefix("/api/v1/") else { unreachable!("routed by owns()") };
        let parts: Vec<&str> = rest.split('/').collect();
        let (user, what): (Option<&str>, &[&str]) = match parts.as_slice() {
            ["users", u, what @ ..] => (Some(*u), what),
            what => (None, what),
        };
        let user = match (user, &own) {
            (Some(u), Some(me)) if u != me => {
                return Ok(Page::json(403, &json!({ "error": "a user's session reads only that user's data" })))
            }
            (_, Some(me)) => me.clone(),
            (Some(u), None) => u.to_string(),
            (None, None) => {
                return Ok(Page::json(400, &json!({ "error": "a token names the user: /api/v1/users/NAME/..." })))
            }
        };
        let (scope, resource) = match what {
            ["servers"] => (Scope::Profile, Resource::Servers),
            ["servers", server, "openvpn"] => (Scope::Profile, Resource::Profile(server)),
            ["usage"] => (Scope::Usage, Resource::Usage),
            ["sessions"] => (Scope::Sessions, Resource::Sessions),
            _ => return Ok(Page::json(404, &json!({ "error": "no such API path (see the API reference)" }))),
        };
        if !scopes.contains(&scope) {
            return Ok(Page::json(
                403,
                &json!({ "error": format!("the token's scopes do not include {}", scope.as_str()) }),
            ));
        }
        let db = &store.conn;
        let Some(user_id) = tollgate_core::names::id_of(db, tollgate_core::names::Kind::User, &user).ok() else {
            return Ok(Page::json(404, &json!({ "error": "no such user" })));
        };
        if own.is_none() {
            eprintln!("tollgate web: {who} read {} of {user} from {}", scope.as_str(), self.r.client);
        }
        match resource {
            Resource::Servers => {
                let list: Vec<Value> = servers::usable_by(db, user_id)?
                    .into_iter()
                    .map(|n| json!({ "name": n, "profile": format!("/api/v1/users/{user}/servers/{n}/openvpn") }))
                    .collect();
                Ok(Page::json(200, &json!({ "user": user, "servers": list })))
            }
            Resource::Profile(server) => {
                if own.is_some() && !self.ss.download {
                    return Ok(Page::json(403, &json!({ "error": "profile downloads are turned off" })));
                }
                Ok(self.profile(store, &user, user_id, server)?.unwrap_or_else(|| {
                    Page::json(404, &json!({ "error": "the user may not use that server (or there is none)" }))
                }))
            }
            Resource::Usage => {
                let u = accounting::usage(db, Some(&user), t)?.into_iter().next();
                Ok(Page::json(200, &u.map(|u| usage_json(&u)).unwrap_or(Value::Null)))
            }
            Resource::Sessions => {
                let rows = accounting::sessions(
                    db,
                    &SessionFilter { open_only: false, user: Some(&user), server: None, limit: 50 },
                )?;
                let logins = events::recent(db, Some(&user), 20)?;
                Ok(Page::json(
                    200,
                    &json!({
                        "user": user,
                        "sessions": rows.iter().map(session_json).collect::<Vec<_>>(),
                        "logins": logins.iter().map(|e| json!({
                            "at": format_time(e.at), "ip": e.ip, "server": e.server, "result": e.result,
                        })).collect::<Vec<_>>(),
                    }),
                ))
            }
        }
    }
}

enum Resource<'a> {
    Servers,
    Profile(&'a str),
    Usage,
    Sessions,
}

const REFUSED: &str = "The username, password or code is not right, or this account may not sign in here.";

/// The note a redirect asks for (`?m=`): fixed texts only, nothing echoed.
fn get_message(query: &str) -> Option<&'static str> {
    let q = parse_form(query).ok()?;
    Some(match get(&q, "m")? {
        "signed-out" => "You are signed out.",
        "password-changed" => "Your password was changed. Sign in with the new one.",
        "totp-on" => "Your authenticator app is on: from now on, sign-ins ask for its code.",
        "totp-bad" => "That code did not match. Type the newest code your app shows.",
        "device-removed" => "The device was removed. The next device you connect from may take its place.",
        "pw-wrong" => "The current password is not right.",
        "pw-differ" => "The two new passwords differ.",
        "pw-rule" => "The new password must be 8 to 128 characters, without control characters.",
        _ => return None,
    })
}

fn login_result(r: &str) -> &'static str {
    match r {
        "accept" => "signed in",
        "challenge" => "code asked",
        _ => "refused",
    }
}

fn usage_table(u: &accounting::UsageRow) -> Markup {
    let used = u.period_bytes_in + u.period_bytes_out;
    let total = u.total_bytes_in + u.total_bytes_out;
    let period = match u.period {
        tollgate_core::quota::Period::Total => "so far".to_string(),
        p => format!("this {} (since {})", p.as_str(), &format_time(u.period_start)[..10]),
    };
    html! {
        dl {
            dt { "Plan" } dd { (u.plan.as_deref().unwrap_or("none")) }
            dt { "Used " (period) }
            dd {
                @match u.quota_bytes {
                    Some(q) => { (format_size_of(used, q)) " of " (format_size(q)) }
                    None => { (format_size(used)) }
                }
                " " span class="exact" { "(" (used) " bytes)" }
            }
            @if let Some(q) = u.quota_bytes {
                dt { "Left" } dd { (format_size_of((q - used).max(0), q)) }
            }
            dt { "In total" } dd { (format_size(total)) }
        }
    }
}

fn sessions_table(rows: &[accounting::SessionRow]) -> Markup {
    html! {
        @if !rows.is_empty() {
            div class="scroll" { table {
                thead { tr { th { "Server" } th { "Connected (UTC)" } th { "Until" } th { "From" } th { "Down / up" } } }
                tbody { @for r in rows { tr {
                    td { (r.server.as_deref().unwrap_or("-")) }
                    td { (format_time(r.connected_at)) }
                    td { @match r.closed_at { Some(c) => (format_time(c)), None => strong { "open" } } }
                    td { (r.real_ip.as_deref().unwrap_or("-")) }
                    td { (format_size(r.bytes_out)) " / " (format_size(r.bytes_in)) }
                } } }
            } }
        }
    }
}

fn usage_json(u: &accounting::UsageRow) -> Value {
    let used = u.period_bytes_in + u.period_bytes_out;
    json!({
        "user": u.user,
        "plan": u.plan,
        "period": u.period.as_str(),
        "period_start": format_time(u.period_start),
        "period_bytes_in": u.period_bytes_in,
        "period_bytes_out": u.period_bytes_out,
        "quota_bytes": u.quota_bytes,
        "left_bytes": u.quota_bytes.map(|q| (q - used).max(0)),
        "total_bytes_in": u.total_bytes_in,
        "total_bytes_out": u.total_bytes_out,
    })
}

fn session_json(r: &accounting::SessionRow) -> Value {
    json!({
        "id": r.id,
        "server": r.server,
        "connected_at": format_time(r.connected_at),
        "closed_at": r.closed_at.map(format_time),
        "real_ip": r.real_ip,
        "vpn_ip": r.vpn_ip,
        "platform": r.platform,
        "bytes_in": r.bytes_in,
        "bytes_out": r.bytes_out,
        "close_reason": r.close_reason,
    })
}

/// The otpauth URI as an inline SVG QR code (no image request, nothing
/// the Content-Security-Policy must allow).
fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(qr) => {
            let svg = qr.render::<qrcode::render::svg::Color>().min_dimensions(220, 220).quiet_zone(true).build();
            svg.find("<svg").map(|i| svg[i..].to_string()).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

/// "ABCD EFGH …": a key to type by hand.
fn group4(s: &str) -> String {
    s.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;line-height:1.5;color:#1b1b1b;background:#fafafa}\
main{max-width:46em;margin:0 auto;padding:1em}header{display:flex;justify-content:space-between;align-items:center;\
flex-wrap:wrap;gap:.5em;padding:.6em 1em;background:#1f3a5f;color:#fff}header a,header .link{color:#fff}\
nav a{margin-right:1em;font-weight:600}.who{margin-right:.6em}h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}\
.stack{display:flex;flex-direction:column;gap:.8em;max-width:22em}.stack label{display:flex;flex-direction:column;gap:.2em}\
input{font-size:1em;padding:.45em;border:1px solid #888;border-radius:4px}button{font-size:1em;padding:.5em 1.2em;\
border:0;border-radius:4px;background:#1f5fa8;color:#fff;cursor:pointer}button.link{background:none;color:#1f5fa8;\
padding:0;text-decoration:underline}form.inline{display:inline}.error{background:#fde8e8;border-left:4px solid #c62828;\
padding:.6em}.note{background:#e8f1fd;border-left:4px solid #1f5fa8;padding:.6em}.hint,small{color:#555}\
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35em .6em;\
border-bottom:1px solid #ddd;white-space:nowrap}dl{display:grid;grid-template-columns:max-content 1fr;gap:.3em 1em}\
dt{font-weight:600}dd{margin:0}.servers li{margin:.3em 0}header button.link{color:#fff}.qr svg{width:220px;height:220px}.secret{font-size:1.1em;\
word-spacing:.3em}.exact{color:#555;font-size:.9em}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_window() {
        let mut st = None;
        for i in 0..RATE_LIMIT {
            let (next, ok) = count_attempt(st, 100 + i as i64 % 3);
            assert!(ok, "attempt {i}");
            st = Some(next);
        }
        let (next, ok) = count_attempt(st, 110);
        assert!(!ok, "one too many in the window");
        let (_, ok) = count_attempt(Some(next), 100 + RATE_WINDOW);
        assert!(ok, "a new window");
    }

    #[test]
    fn paths_and_messages() {
        for p in ["/", "/signin", "/account", "/account/totp/new", "/download/nl-1", "/api/v1/usage"] {
            assert!(owns(p), "{p}");
        }
        for p in ["/oidc/login", "/health", "/apix", "/favicon.ico"] {
            assert!(!owns(p), "{p}");
        }
        assert_eq!(
            get_message("m=totp-on"),
            Some("Your authenticator app is on: from now on, sign-ins ask for its code.")
        );
        assert_eq!(get_message("m=%3Cscript%3E"), None, "nothing echoed");
        assert_eq!(group4("ABCDEFGHIJ"), "ABCD EFGH IJ");
    }

    #[test]
    fn forwarded_only_from_trusted_proxies() {
        let head = |fwd: Option<&str>| Head {
            method: "GET".into(),
            path: "/".into(),
            query: String::new(),
            cookies: String::new(),
            bearer: None,
            forwarded_for: fwd.map(str::to_string),
            content_length: 0,
        };
        let cfg = SelfService { trusted_proxies: vec!["127.0.0.1".parse().unwrap()], ..SelfService::default() };
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_of(&cfg, proxy, &head(Some("198.51.100.7"))).to_string(), "198.51.100.7");
        assert_eq!(client_of(&cfg, other, &head(Some("198.51.100.7"))), other, "anyone may send the header");
        assert_eq!(client_of(&cfg, proxy, &head(Some("junk"))), proxy);
    }

    #[test]
    fn pages_escape_what_they_show() {
        let markup = usage_table(&accounting::UsageRow {
            user: "u".into(),
            plan: Some("<b>plan</b>".into()),
            period: tollgate_core::quota::Period::Month,
            period_start: 0,
            period_bytes_in: 1,
            period_bytes_out: 2,
            quota_bytes: Some(1000),
            total_bytes_in: 1,
            total_bytes_out: 2,
        })
        .into_string();
        assert!(markup.contains("&lt;b&gt;plan&lt;/b&gt;") && !markup.contains("<b>plan"), "{markup}");
        assert!(markup.contains("(3 bytes)"), "{markup}");
    }
}
