//! Password checks against an LDAP directory (OpenLDAP, Active Directory):
//! search-then-bind with a service account, or a direct bind with a DN
//! template; the user's groups from an attribute (memberOf) or a group
//! search. Values from the client are escaped: RFC 4515 in filters,
//! RFC 4514 in DNs.

use ldap3::{dn_escape, ldap_escape, LdapConn, LdapConnSettings, LdapError, Scope, SearchEntry};
use std::sync::Arc;
use std::time::Duration;
use tollgate_core::config::Ldap;
use tollgate_core::directory::{norm_dn, Answer};

use crate::Stop;

impl From<LdapError> for Stop {
    fn from(e: LdapError) -> Stop {
        Stop::Unavailable(one_line(&e.to_string()))
    }
}

fn one_line(s: &str) -> String {
    tollgate_core::names::one_line(s, 200)
}

pub fn check(cfg: &Ldap, username: &str, password: &str) -> Answer {
    // An empty password is an unauthenticated bind, which a directory
    // "accepts" (RFC 4513 5.1.2): never let it near one.
    if password.is_empty() {
        return Answer::Reject { reason: "empty password".into() };
    }
    match check_inner(cfg, username, password) {
        Ok(a) => a,
        Err(Stop::Reject(reason)) => Answer::Reject { reason },
        Err(Stop::Unavailable(reason)) => Answer::Unavailable { server: cfg.url.clone(), reason },
    }
}

fn connect(cfg: &Ldap) -> Result<LdapConn, Stop> {
    let timeout = Duration::from_secs(cfg.timeout_secs);
    let mut settings = LdapConnSettings::new().set_conn_timeout(timeout).set_starttls(cfg.starttls);
    if let Some(ca) = &cfg.ca_file {
        settings = settings.set_config(Arc::new(tls_config(ca)?));
    }
    Ok(LdapConn::with_settings(settings, &cfg.url)?)
}

/// TLS that trusts the CA file's certificates only.
fn tls_config(ca: &std::path::Path) -> Result<rustls::ClientConfig, Stop> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .map_err(|e| Stop::Unavailable(format!("cannot read ca_file {}: {e}", ca.display())))?;
    for c in certs {
        let c = c.map_err(|e| Stop::Unavailable(format!("bad certificate in {}: {e}", ca.display())))?;
        roots.add(c).map_err(|e| Stop::Unavailable(format!("bad certificate in {}: {e}", ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Stop::Unavailable(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn check_inner(cfg: &Ldap, username: &str, password: &str) -> Result<Answer, Stop> {
    let timeout = Duration::from_secs(cfg.timeout_secs);
    let mut ldap = connect(cfg)?;
    let group_attr = cfg.group_attribute.as_str();
    let name_attr = cfg.name_attribute.as_str();
    // The entry's own name, to compare with what the client sent: the
    // directory matches names without regard to case, tollgate's accounts
    // do not, and "ALICE" must not become a second account of alice's.
    let mut names: Vec<String> = Vec::new();
    let (dn, mut groups) = match &cfg.user_dn {
        Some(template) => (template.replace("{username}", &dn_escape(username)), Vec::new()),
        None => {
            let secret_file =
                cfg.bind_password_file.as_ref().ok_or(Stop::Unavailable("no bind_password_file".into()))?;
            let secret = std::fs::read_to_string(secret_file)
                .map_err(|e| Stop::Unavailable(format!("cannot read {}: {e}", secret_file.display())))?;
            let secret = secret.trim_end_matches(['\n', '\r']);
            let bind_dn = cfg.bind_dn.as_deref().unwrap_or_default();
            let r = ldap.with_timeout(timeout).simple_bind(bind_dn, secret)?;
            if r.rc != 0 {
                return Err(Stop::Unavailable(format!(
                    "service account bind failed (rc {}: {})",
                    r.rc,
                    one_line(&r.text)
                )));
            }
            let filter = cfg.user_filter.replace("{username}", &ldap_escape(username));
            let base = cfg.base_dn.as_deref().unwrap_or_default();
            let (entries, _) = ldap
                .with_timeout(timeout)
                .search(base, Scope::Subtree, &filter, vec![group_attr, name_attr])?
                .success()?;
            match entries.len() {
                0 => return Err(Stop::Reject("no such user in the directory".into())),
                1 => {}
                n => return Err(Stop::Unavailable(format!("user_filter matched {n} entries for one name"))),
            }
            let e = SearchEntry::construct(entries.into_iter().next().expect("one entry"));
            let groups = e.attrs.get(group_attr).cloned().unwrap_or_default();
            names = e.attrs.get(name_attr).cloned().unwrap_or_default();
            (e.dn, groups)
        }
    };
    let r = ldap.with_timeout(timeout).simple_bind(&dn, password)?;
    match r.rc {
        0 => {}
        // invalidCredentials, noSuchObject (a direct bind to nobody)
        49 | 32 => return Err(Stop::Reject(format!("bind as the user refused (rc {})", r.rc))),
        rc => return Err(Stop::Unavailable(format!("bind as the user failed (rc {rc}: {})", one_line(&r.text)))),
    }
    if let Some(base) = &cfg.group_search_base {
        let filter = cfg.group_filter.replace("{dn}", &ldap_escape(dn.as_str()));
        let (entries, _) = ldap.with_timeout(timeout).search(base, Scope::Subtree, &filter, vec!["1.1"])?.success()?;
        groups = entries.into_iter().map(|e| SearchEntry::construct(e).dn).collect();
    }
    if cfg.user_dn.is_some() {
        // Direct bind: the user reads its own entry's name (and groups).
        let (entries, _) = ldap
            .with_timeout(timeout)
            .search(&dn, Scope::Base, "(objectClass=*)", vec![group_attr, name_attr])?
            .success()?;
        if let Some(e) = entries.into_iter().next() {
            let e = SearchEntry::construct(e);
            names = e.attrs.get(name_attr).cloned().unwrap_or_default();
            if cfg.group_search_base.is_none() {
                groups = e.attrs.get(group_attr).cloned().unwrap_or_default();
            }
        }
    }
    if !names.iter().any(|n| n == username) {
        return Err(Stop::Reject(format!(
            "the entry's {name_attr} is not exactly the name given ({})",
            if names.is_empty() { "it has none".to_string() } else { names.join(", ") }
        )));
    }
    let _ = ldap.unbind();
    if let Some(required) = &cfg.required_group {
        if !groups.iter().any(|g| norm_dn(g) == norm_dn(required)) {
            return Ok(Answer::NotInGroup { group: required.clone() });
        }
    }
    Ok(Answer::Accept { dn, groups, static_ip: None, reply: Default::default() })
}
