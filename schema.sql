-- tollgate schema, version 7. The one source of truth: embedded in the core
-- and applied by `tollgate init`. Times are UTC seconds since the epoch.
-- PRAGMA user_version carries the version; migrations move it forward.

-- An OpenVPN instance users can be granted. Carries what a client profile needs.
CREATE TABLE servers (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    host           TEXT    NOT NULL,
    port           INTEGER NOT NULL DEFAULT 1194 CHECK (port BETWEEN 1 AND 65535),
    proto          TEXT    NOT NULL DEFAULT 'udp' CHECK (proto IN ('udp', 'tcp')),
    ca_pem         TEXT    NOT NULL,
    tls_mode       TEXT    NOT NULL CHECK (tls_mode IN ('tls-crypt', 'tls-auth')),
    tls_key        TEXT    NOT NULL,
    key_direction  INTEGER CHECK (key_direction IN (0, 1)),
    data_ciphers   TEXT,
    extra          TEXT    NOT NULL DEFAULT '',   -- extra client directives, one per line
    client_cert    INTEGER NOT NULL DEFAULT 0,    -- clients need their own certificate
    pki_dir        TEXT,                          -- where issued/USER.crt, private/USER.key live
    created_at     INTEGER NOT NULL
);

-- What a user may consume. NULL limits mean unlimited.
CREATE TABLE plans (
    id                 INTEGER PRIMARY KEY,
    name               TEXT    NOT NULL UNIQUE,
    quota_bytes        INTEGER CHECK (quota_bytes >= 0),
    period             TEXT    NOT NULL DEFAULT 'month'
                               CHECK (period IN ('month', 'week', 'day', 'total')),
    max_session_secs   INTEGER CHECK (max_session_secs > 0),
    max_connections    INTEGER CHECK (max_connections > 0),
    expires_after_secs INTEGER CHECK (expires_after_secs > 0),
    created_at         INTEGER NOT NULL
);

-- Users share pushes and server grants through a group.
CREATE TABLE groups (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL UNIQUE,
    push             TEXT    NOT NULL DEFAULT '',  -- one push option per line
    redirect_gateway INTEGER NOT NULL DEFAULT 0,
    all_servers      INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    auth_method      TEXT                          -- members' auth method, NULL = config default
);

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    password_hash   TEXT    NOT NULL,              -- argon2id PHC string
    enabled         INTEGER NOT NULL DEFAULT 1,
    plan_id         INTEGER REFERENCES plans(id) ON DELETE RESTRICT,
    plan_since      INTEGER,                       -- start of the plan's expires-after clock
    group_id        INTEGER REFERENCES groups(id) ON DELETE SET NULL,
    expires_at      INTEGER,                       -- account expiry, NULL = never
    all_servers     INTEGER NOT NULL DEFAULT 0,
    static_ip       TEXT,
    max_devices     INTEGER CHECK (max_devices >= 0),
    device_binding  TEXT CHECK (device_binding IN ('off', 'auto', 'manual')),
    failed_count    INTEGER NOT NULL DEFAULT 0,    -- failures in the current window
    failed_since    INTEGER,                       -- start of that window
    locked_until    INTEGER,
    totp_secret     TEXT,                          -- base32; NULL = no second factor
    totp_confirmed  INTEGER NOT NULL DEFAULT 0,
    totp_last_step  INTEGER,                       -- replay protection
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    auth_method     TEXT,                          -- NULL = the group's, else the config's
    saved           TEXT                           -- JSON object the post-auth program saved
);
CREATE INDEX users_group ON users(group_id);

-- Access to a server, for a user or for a group (exactly one of the two).
CREATE TABLE grants (
    id        INTEGER PRIMARY KEY,
    server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    user_id   INTEGER REFERENCES users(id) ON DELETE CASCADE,
    group_id  INTEGER REFERENCES groups(id) ON DELETE CASCADE,
    CHECK ((user_id IS NULL) <> (group_id IS NULL))
);
CREATE UNIQUE INDEX grants_user  ON grants(user_id, server_id)  WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX grants_group ON grants(group_id, server_id) WHERE group_id IS NOT NULL;

-- Hardware ids bound to a user (device binding).
CREATE TABLE devices (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hwaddr     TEXT    NOT NULL,                   -- normalized
    approved   INTEGER NOT NULL DEFAULT 1,
    first_seen INTEGER,
    last_seen  INTEGER,
    created_at INTEGER NOT NULL,
    UNIQUE (user_id, hwaddr)
);

-- One row per tunnel. Open while closed_at IS NULL.
CREATE TABLE sessions (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    server_id      INTEGER REFERENCES servers(id) ON DELETE SET NULL,
    connected_at   INTEGER NOT NULL,               -- OpenVPN's time_unix
    closed_at      INTEGER,
    real_ip        TEXT,
    real_port      INTEGER,
    vpn_ip         TEXT,
    platform       TEXT,
    client_version TEXT,
    bytes_in       INTEGER NOT NULL DEFAULT 0,     -- from the client
    bytes_out      INTEGER NOT NULL DEFAULT 0,     -- to the client
    charged_in     INTEGER NOT NULL DEFAULT 0,     -- already added to usage
    charged_out    INTEGER NOT NULL DEFAULT 0,
    close_reason   TEXT,
    token_session  TEXT                            -- OpenVPN's session_id, for a client that sent no username
);
CREATE INDEX sessions_open ON sessions(user_id) WHERE closed_at IS NULL;
CREATE INDEX sessions_user_time ON sessions(user_id, connected_at);
CREATE INDEX sessions_token ON sessions(token_session) WHERE token_session IS NOT NULL;

-- Usage per user and quota period, so a quota check is one indexed row.
CREATE TABLE usage (
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    period_start INTEGER NOT NULL,                 -- 0 for the 'total' period
    bytes_in     INTEGER NOT NULL DEFAULT 0,
    bytes_out    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, period_start)
) WITHOUT ROWID;

-- Every auth decision, bounded by the retention setting.
CREATE TABLE auth_events (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    username TEXT    NOT NULL,
    server   TEXT,
    ip       TEXT,
    result   TEXT    NOT NULL CHECK (result IN ('accept', 'deny', 'challenge')),
    reason   TEXT    NOT NULL,
    kind     TEXT    NOT NULL DEFAULT 'other'   -- the reason as a stable word, e.g. bad_password (metrics)
);
CREATE INDEX auth_events_at ON auth_events(at);

-- Dynamic (CRV1) challenges waiting for an answer: single use, bound, expiring.
-- A RADIUS server may challenge a user tollgate does not know yet (to be
-- provisioned once the answer is accepted): then user_id is NULL.
CREATE TABLE challenges (
    state_id   TEXT    PRIMARY KEY,
    user_id    INTEGER REFERENCES users(id) ON DELETE CASCADE,
    username   TEXT    NOT NULL,
    ip         TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    kind       TEXT    NOT NULL DEFAULT 'totp',    -- what answers it: 'totp', 'program' or 'radius'
    carry      TEXT                                -- JSON: the session's group and address so far
);

-- Single sign-on logins waiting for the browser ([oidc]). The hook hands
-- the client a link with a random secret; only its hash is stored. The
-- login page binds the browser (a cookie, hashed here) and the OpenID
-- state; the callback stores the provider's verified answer, which the
-- waiting login reads and deletes. Rows live for the login's timeout.
CREATE TABLE web_logins (
    link_hash    TEXT    PRIMARY KEY,          -- SHA-256 (hex) of the link's secret
    username     TEXT    NOT NULL,             -- as the client sent it
    server       TEXT    NOT NULL,
    ip           TEXT    NOT NULL,             -- the client's address (shown on the login page)
    platform     TEXT,                         -- the client's IV_PLAT and IV_GUI_VER
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    state_hash   TEXT    UNIQUE,               -- SHA-256 of the OpenID state, once the browser went on
    browser_hash TEXT,                         -- SHA-256 of the cookie that browser got
    nonce        TEXT,
    verifier     TEXT,                         -- PKCE code verifier
    answer       TEXT,                         -- JSON: what the provider said, once it did
    refresh_token TEXT                         -- the provider's, with an accepting answer
);

-- A single sign-on user's standing with the provider on a server: the
-- refresh token of the latest sign-in, which the sweep asks it again with
-- ([oidc] recheck_every), and its refusal once it gave one (the sweep cuts
-- the user's tunnels, their renegotiations are refused, until the user
-- signs in again).
CREATE TABLE sso_grants (
    server_id     INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    refresh_token TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    checked_at    INTEGER NOT NULL,
    refused       TEXT,                          -- why the provider no longer admits the user
    PRIMARY KEY (server_id, user_id)
) WITHOUT ROWID;

-- Tunnels whose client sent no username (auth-user-pass-optional) and
-- signed in at the identity provider: OpenVPN's session id (stable across
-- the tunnel's renegotiations, known to every hook) names the account the
-- username claim chose, for client-connect, renegotiations and
-- client-disconnect, and a reconnection by session token. Pruned a day
-- after no open session carries the id any more.
CREATE TABLE unnamed_tunnels (
    server_id    INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    session_id   TEXT    NOT NULL,               -- OpenVPN's session_id
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    signed_in_at INTEGER NOT NULL,
    PRIMARY KEY (server_id, session_id)
) WITHOUT ROWID;

-- Credential failures per client address ([lockout] per_source): an address
-- that fails too often is blocked for a while, whatever names it tries.
CREATE TABLE source_failures (
    ip           TEXT    PRIMARY KEY,
    failed_count INTEGER NOT NULL DEFAULT 0,
    failed_since INTEGER,
    locked_until INTEGER
) WITHOUT ROWID;

-- What the post-auth program chose for one tunnel (group, static address),
-- from the accepted login until client-connect applies it.
CREATE TABLE assignments (
    server_id  INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    real_ip    TEXT    NOT NULL,
    real_port  INTEGER NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_id   INTEGER REFERENCES groups(id) ON DELETE CASCADE,
    static_ip  TEXT,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (server_id, real_ip, real_port)
) WITHOUT ROWID;

-- Each server's last sweep, for `tollgate metrics`.
CREATE TABLE sweeps (
    server      TEXT    PRIMARY KEY,
    at          INTEGER NOT NULL,                -- when it started
    duration_ms INTEGER NOT NULL,
    ok          INTEGER NOT NULL                 -- 0 when it failed
) WITHOUT ROWID;

-- Signed-in browsers of the self-service site (`tollgate web`). The cookie
-- holds the secret; only its SHA-256 is kept. Disabling or deleting the user
-- ends them.
CREATE TABLE web_sessions (
    id_hash    TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf       TEXT    NOT NULL,                 -- the forms' anti-forgery token
    totp_pending TEXT,                           -- a second factor being enrolled
    ip         TEXT    NOT NULL,                 -- where it signed in from
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_user ON web_sessions(user_id);

-- The admin's tokens for the JSON API (`tollgate token`): only the SHA-256
-- of each is kept; a revoked token stays listed.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    hash         TEXT    NOT NULL UNIQUE,
    scopes       TEXT    NOT NULL,               -- comma-separated: profile,usage,sessions
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
