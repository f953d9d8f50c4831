//! The OpenID provider, over HTTPS: discovery, the code redemption (with
//! PKCE and the client secret), the refresh, and the ID token's signature,
//! checked with the provider's published keys. The claims are checked by
//! `tollgate_core::oidc::check_claims`.

use anyhow::{anyhow, bail, Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tollgate_core::config::Oidc;
use tollgate_core::names::one_line;
use tollgate_core::oidc;

/// Bodies larger than this from the provider are refused.
const MAX_BODY: u64 = 256 * 1024;

/// What the token endpoint gave: the checked ID token's claims, and a
/// refresh token if there was one (never printed: no Debug).
pub struct Tokens {
    pub claims: serde_json::Value,
    pub refresh_token: Option<String>,
}

/// The provider's definite "no" to a refresh (invalid_grant), as opposed to
/// a provider that could not answer.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

pub struct Provider {
    agent: ureq::Agent,
    issuer: String,
    pub authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    /// The published keys, fetched once per Provider (a sweep's recheck
    /// verifies one ID token per user with them).
    jwks: std::cell::OnceCell<jsonwebtoken::jwk::JwkSet>,
}

fn agent(o: &Oidc) -> Result<ureq::Agent> {
    let t = Duration::from_secs(o.timeout_secs);
    let mut b = ureq::AgentBuilder::new().timeout_connect(t).timeout(t).redirects(0).user_agent("tollgate");
    if let Some(ca) = &o.ca_file {
        b = b.tls_config(Arc::new(tls_config(ca)?));
    }
    Ok(b.build())
}

fn tls_config(ca: &std::path::Path) -> Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| anyhow!("cannot read ca_file {}: {e}", ca.display()))?;
    for c in certs {
        let c = c.map_err(|e| anyhow!("ca_file {}: {e}", ca.display()))?;
        roots.add(c).map_err(|e| anyhow!("ca_file {}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        bail!("ca_file {} holds no certificate", ca.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A JSON body, or a one-line reason (what the provider sent otherwise).
fn json_of(r: std::result::Result<ureq::Response, ureq::Error>, what: &str) -> Result<serde_json::Value> {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let body = r.into_string().unwrap_or_default();
            bail!("{what}: HTTP {code}: {}", one_line(&body, 160))
        }
        Err(e) => bail!("{what}: {e}"),
    };
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(resp.into_reader(), MAX_BODY), &mut body)
        .with_context(|| format!("{what}: reading the answer"))?;
    serde_json::from_slice(&body)
        .map_err(|_| anyhow!("{what}: not JSON: {}", one_line(&String::from_utf8_lossy(&body), 80)))
}

impl Provider {
    /// Read the provider's discovery document; its issuer must be ours.
    pub fn discover(o: &Oidc) -> Result<Provider> {
        let agent = agent(o)?;
        let url = format!("{}/.well-known/openid-configuration", o.issuer);
        let d = json_of(agent.get(&url).call(), "discovery")?;
        let s = |k: &str| -> Result<String> {
            d.get(k).and_then(|v| v.as_str()).map(str::to_string).ok_or_else(|| anyhow!("discovery: no {k}"))
        };
        let issuer = s("issuer")?;
        if issuer.trim_end_matches('/') != o.issuer {
            bail!("discovery: issuer is {issuer:?}, the config says {:?}", o.issuer);
        }
        Ok(Provider {
            agent,
            issuer,
            authorization_endpoint: s("authorization_endpoint")?,
            token_endpoint: s("token_endpoint")?,
            jwks_uri: s("jwks_uri")?,
            jwks: std::cell::OnceCell::new(),
        })
    }

    /// Redeem an authorization code: the ID token's claims, its signature
    /// and claims checked, and the refresh token if the provider gave one.
    pub fn redeem(&self, o: &Oidc, code: &str, verifier: &str, nonce: &str) -> Result<Tokens> {
        self.token_call(
            o,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &o.redirect_url),
                ("code_verifier", verifier),
            ],
            Some(nonce),
        )
    }

    /// Ask again with a refresh token (the sweep's recheck): the new ID
    /// token's claims, checked as at sign-in but for the nonce, and the
    /// refresh token to use next (the same one unless the provider rotated
    /// it). Err(Refused) when the provider no longer honours the token.
    pub fn refresh(&self, o: &Oidc, refresh_token: &str) -> Result<Tokens> {
        let mut t = self.token_call(o, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)], None)?;
        t.refresh_token.get_or_insert_with(|| refresh_token.to_string());
        Ok(t)
    }

    fn token_call(&self, o: &Oidc, grant: &[(&str, &str)], nonce: Option<&str>) -> Result<Tokens> {
        let secret = std::fs::read_to_string(&o.client_secret_file)
            .with_context(|| format!("cannot read client_secret_file {}", o.client_secret_file.display()))?;
        let secret = secret.trim_end_matches(['\n', '\r']);
        // client_secret_basic: both parts form-encoded first (RFC 6749 2.3.1).
        let basic =
            data_encoding::BASE64.encode(format!("{}:{}", oidc::encode(&o.client_id), oidc::encode(secret)).as_bytes());
        let r = self
            .agent
            .post(&self.token_endpoint)
            .set("Authorization", &format!("Basic {basic}"))
            .set("Content-Type", "application/x-www-form-urlencoded")
            .set("Accept", "application/json")
            .send_string(&oidc::form(grant));
        // RFC 6749 5.2: invalid_grant is the provider's "no" (the token
        // expired or was revoked, the user or the session is gone).
        if let Err(ureq::Error::Status(400, resp)) = r {
            let body = resp.into_string().unwrap_or_default();
            let error = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string));
            if error.as_deref() == Some("invalid_grant") {
                return Err(Refused(format!("the provider answered invalid_grant: {}", one_line(&body, 160))).into());
            }
            bail!("token endpoint: HTTP 400: {}", one_line(&body, 160));
        }
        let t = json_of(r, "token endpoint")?;
        let Some(id_token) = t.get("id_token").and_then(|v| v.as_str()) else {
            bail!("token endpoint: no id_token in the answer");
        };
        let claims = self.verify(o, id_token)?;
        oidc::check_claims(&claims, o, &self.issuer, nonce, tollgate_core::units::now()).map_err(|e| anyhow!(e))?;
        let refresh_token = t.get("refresh_token").and_then(|v| v.as_str()).map(str::to_string);
        Ok(Tokens { claims, refresh_token })
    }

    /// The ID token's signature, by the provider's published key.
    fn verify(&self, o: &Oidc, token: &str) -> Result<serde_json::Value> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        let header = jsonwebtoken::decode_header(token).map_err(|e| anyhow!("ID token: {e}"))?;
        // Asymmetric signatures only: never "none", never a MAC keyed
        // with something an attacker could know.
        let alg = header.alg;
        if !matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            bail!("ID token: signature algorithm {alg:?} is not accepted");
        }
        let jwks = match self.jwks.get() {
            Some(k) => k,
            None => {
                let k = serde_json::from_value(json_of(self.agent.get(&self.jwks_uri).call(), "keys (jwks_uri)")?)
                    .map_err(|e| anyhow!("keys (jwks_uri): {e}"))?;
                self.jwks.get_or_init(|| k)
            }
        };
        let jwk = match &header.kid {
            Some(kid) => jwks.find(kid).ok_or_else(|| anyhow!("ID token: no published key has kid {kid:?}"))?,
            None if jwks.keys.len() == 1 => &jwks.keys[0],
            None => bail!("ID token names no key (kid) and the provider publishes several"),
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| anyhow!("ID token key: {e}"))?;
        let mut v = Validation::new(alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&o.client_id]);
        v.leeway = 60;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).map_err(|e| anyhow!("ID token: {e}"))?;
        Ok(data.claims)
    }
}
