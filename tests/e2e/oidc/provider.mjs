// A throwaway OpenID provider for the end-to-end tests: panva's oidc-provider
// (8.x, installed by oidcd_install in tests/e2e/oidcd.sh, which also says how
// this file finds it) behind a small plain-node HTTP server that serves the
// login pages itself. Configured by the environment:
//
//   OIDC_PORT           listen on OIDC_HOST:OIDC_PORT (TCP, plain http)
//   OIDC_HOST           default 127.0.0.1
//   OIDC_ISSUER         e.g. http://127.0.0.1:PORT; discovery is at
//                       OIDC_ISSUER/.well-known/openid-configuration
//   OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI
//                       the one client: authorization code flow only, PKCE
//                       with S256 required, client_secret_basic or
//                       client_secret_post at the token endpoint
//   OIDC_ACCOUNTS       a JSON file {"alice": {"password": "...", "groups":
//                       ["vpn"], "email": "..."}, ...} (email optional), read
//                       again at each login and each token request
//   OIDC_GARBAGE=1      the token endpoint answers 200, Content-Type
//                       application/json, with a body that is not JSON
//
// Scopes openid, profile (preferred_username), groups (groups) and email
// (email, email_verified); the claims of the granted scopes go in the ID
// token itself (conformIdTokenClaims: false), sub and preferred_username
// are the login name. ID tokens are signed RS256 with an RSA key made at
// start-up, published at jwks_uri with a kid.
//
// The login page is a real form (login, password) at /interaction/UID; a
// wrong login or password shows it again with status 401 and an error.
// Consent is implied: a successful login also finishes the consent prompt
// with a Grant of the requested scopes. Cookies carry no Secure flag over
// plain http (oidc-provider sets it only on https requests) and are
// SameSite=Lax, so a browser keeps them on http://127.0.0.1.
// Requests and provider errors are logged to stdout and stderr.

import http from 'node:http';
import { createHash, generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`provider.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

const port = Number(need('OIDC_PORT'));
const host = process.env.OIDC_HOST || '127.0.0.1';
const issuer = need('OIDC_ISSUER');
const clientId = need('OIDC_CLIENT_ID');
const clientSecret = need('OIDC_CLIENT_SECRET');
const redirectUri = need('OIDC_REDIRECT_URI');
const accountsFile = need('OIDC_ACCOUNTS');
const garbage = process.env.OIDC_GARBAGE === '1';

// The accounts file, read afresh each time, so users can be added while the
// provider runs. Only the file's own keys count (no "constructor" account).
function account(name) {
  let all;
  try {
    all = JSON.parse(readFileSync(accountsFile, 'utf8'));
  } catch (err) {
    console.error(`provider.mjs: cannot read ${accountsFile}: ${err.message}`);
    return undefined;
  }
  if (typeof name !== 'string' || !all || !Object.hasOwn(all, name)) return undefined;
  const a = all[name];
  return a && typeof a === 'object' ? a : undefined;
}

function sameSecret(a, b) {
  const h = (s) => createHash('sha256').update(String(s)).digest();
  return timingSafeEqual(h(a), h(b));
}

async function findAccount(ctx, sub) {
  const a = account(sub);
  if (!a) return undefined;
  return {
    accountId: sub,
    async claims() {
      const c = {
        sub,
        preferred_username: sub,
        groups: Array.isArray(a.groups) ? a.groups.map(String) : [],
      };
      if (a.email) {
        c.email = String(a.email);
        c.email_verified = true;
      }
      return c;
    },
  };
}

// An RSA key for the ID tokens, new at each start.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: randomBytes(8).toString('hex'),
  use: 'sig',
  alg: 'RS256',
};

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body><h1>${esc(title)}</h1>
${body}
</body></html>
`;
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = page('Sign-in error', `<p>${esc(out.error)}: ${esc(out.error_description || '')}</p>`);
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  // A client registers one method, but oidc-provider takes either of these
  // two for a client registered with one of them.
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  responseTypes: ['code'],
  pkce: { methods: ['S256'], required: () => true },
  scopes: ['openid', 'profile', 'groups', 'email'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username'],
    groups: ['groups'],
    email: ['email', 'email_verified'],
  },
  conformIdTokenClaims: false,
  enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
  jwks: { keys: [jwk] },
  findAccount,
  renderError,
  // A refresh token with every code (tollgate's sweep asks again with it),
  // as Keycloak gives one; the stock rule wants the offline_access scope.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  cookies: {
    names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_resume' },
    long: { httpOnly: true, sameSite: 'lax', signed: true },
    short: { httpOnly: true, sameSite: 'lax', signed: true },
    keys: [randomBytes(32).toString('hex')],
  },
  features: { devInteractions: { enabled: false } },
  // Lifetimes in seconds, set so the log is not full of notices about the defaults.
  ttl: {
    AccessToken: 3600, AuthorizationCode: 60, Grant: 3600, IdToken: 3600, Interaction: 600, RefreshToken: 3600,
    Session: 3600,
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});

for (const ev of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error',
  'introspection.error', 'revocation.error', 'jwks.error', 'discovery.error', 'end_session.error']) {
  provider.on(ev, (ctx, err) => {
    console.error(`${ev}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}`);
  });
}
provider.on('grant.success', (ctx) => console.log(`tokens issued to ${ctx.oidc.client.clientId}`));

function send(res, status, html) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(html);
}

function loginPage(uid, login, error) {
  return page('Sign in', `${error ? `<p class="error">${esc(error)}</p>\n` : ''}<form method="post" action="/interaction/${esc(uid)}/login">
<label>Username <input type="text" name="login" value="${esc(login || '')}" autofocus></label>
<label>Password <input type="password" name="password"></label>
<button type="submit">Sign in</button>
</form>`);
}

function readBody(req, limit = 65536) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('request body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// Finish the interaction with consent to what was asked: a Grant of the
// requested scopes (and claims parameter, if any) for this account.
async function finish(req, res, details, accountId) {
  const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
  if (details.params.scope) grant.addOIDCScope(details.params.scope);
  if (details.params.claims) {
    try {
      const asked = JSON.parse(details.params.claims);
      const names = [...Object.keys(asked.id_token || {}), ...Object.keys(asked.userinfo || {})];
      if (names.length) grant.addOIDCClaims(names);
    } catch { /* the provider already validated it */ }
  }
  const grantId = await grant.save();
  const result = { consent: { grantId } };
  if (details.prompt.name === 'login') result.login = { accountId };
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

// GET /interaction/UID: the login form (or, for a known session that only
// lacks consent, straight back to the provider). POST /interaction/UID/login.
async function interaction(req, res, path) {
  const m = /^\/interaction\/([^/]+)(\/login)?$/.exec(path);
  if (!m) return send(res, 404, page('Not found', ''));
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== m[1]) return send(res, 400, page('Sign-in error', '<p>interaction mismatch</p>'));
  if (req.method === 'GET' && !m[2]) {
    if (details.prompt.name === 'login') return send(res, 200, loginPage(details.uid));
    return finish(req, res, details, details.session.accountId);
  }
  if (req.method === 'POST' && m[2]) {
    const form = new URLSearchParams(await readBody(req));
    if (details.prompt.name !== 'login') return finish(req, res, details, details.session.accountId);
    const login = form.get('login') || '';
    const a = account(login);
    if (!a || typeof a.password !== 'string' || !sameSecret(form.get('password') || '', a.password)) {
      console.log(`login failed for ${JSON.stringify(login)}`);
      return send(res, 401, loginPage(details.uid, login, 'Invalid username or password.'));
    }
    console.log(`login ok for ${JSON.stringify(login)}`);
    return finish(req, res, details, login);
  }
  res.setHeader('Allow', m[2] ? 'POST' : 'GET');
  return send(res, 405, page('Method not allowed', ''));
}

async function garbageToken(req, res) {
  try { await readBody(req); } catch { /* answer all the same */ }
  res.statusCode = 200;
  res.setHeader('Content-Type', 'application/json');
  res.end('<html><body>502 Bad Gateway? {"access_token": </body></html>\n');
}

const callback = provider.callback();

const server = http.createServer((req, res) => {
  let path;
  try {
    path = new URL(req.url, 'http://x').pathname;
  } catch {
    return send(res, 400, page('Bad request', ''));
  }
  res.on('finish', () => console.log(`${req.method} ${path} ${res.statusCode}`));
  if (garbage && path === '/token') return garbageToken(req, res);
  if (path.startsWith('/interaction/')) {
    return interaction(req, res, path).catch((err) => {
      console.error(`interaction ${path}: ${err.name}: ${err.message}`);
      if (!res.headersSent) send(res, 400, page('Sign-in error', `<p>${esc(err.message)}</p>`));
      else res.end();
    });
  }
  return callback(req, res);
});

server.listen(port, host, () => {
  console.log(`oidc-provider listening on http://${host}:${port}, issuer ${issuer}${garbage ? ', garbage token endpoint' : ''}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    console.log(`stopping (${sig})`);
    process.exit(0);
  });
}
