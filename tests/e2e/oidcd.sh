# A throwaway OpenID provider for tests: panva's oidc-provider
# ($OIDC_PROVIDER_VERSION, from npm) run by Node with tests/e2e/oidc/provider.mjs,
# which says what it serves. Sourced; needs node and npm (Debian's nodejs and
# npm), and curl for the start-up probe. Its config, accounts, log and pid
# file live under DIR; it runs as the invoking user.
#
#   oidcd_install                      npm-install oidc-provider@$OIDC_PROVIDER_VERSION
#                                      into OIDCD_CACHE (default
#                                      /var/cache/tollgate-tests/oidc-provider)
#                                      unless that version is already there;
#                                      fails with a message if npm is missing
#   oidcd_prepare DIR PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
#                                      DIR/provider.mjs (a copy of the one in
#                                      the repo, with DIR/node_modules a link to
#                                      OIDCD_CACHE/node_modules: ES modules
#                                      ignore NODE_PATH and look for packages
#                                      next to the importing file) and an empty
#                                      DIR/accounts.json; one client with that
#                                      id, secret and redirect URI; sets
#                                      OIDCD_PORT, OIDCD_ISSUER
#                                      (http://$OIDCD_HOST:PORT), OIDCD_CLIENT_ID,
#                                      OIDCD_CLIENT_SECRET, OIDCD_REDIRECT_URI
#   oidc_user DIR NAME PASSWORD [GROUP...]
#                                      an account: sub and preferred_username
#                                      NAME, groups GROUP...; email
#                                      $OIDC_USER_EMAIL if that is set. The
#                                      provider reads DIR/accounts.json at each
#                                      login, so users can be added while it runs
#   oidcd_start DIR                    start it as a background job (its pid in
#                                      OIDCD_PID and OIDCD_PIDFILE), wait until
#                                      the discovery document answers (10 s at
#                                      most)
#   oidcd_stop                         kill it, wait until it is gone, remove
#                                      the pid file
#
# OIDCD_HOST is the address it listens on and names itself by: 127.0.0.1
# unless set before oidcd_prepare. The discovery document is
# $OIDCD_ISSUER/.well-known/openid-configuration.
# OIDCD_PIDFILE: oidcd_prepare sets it to DIR/oidcd.pid unless it is already
# set; lib.sh's cleanup kills "$W"/*.pid, so a test whose DIR is below $W
# sets OIDCD_PIDFILE=$W/oidcd.pid first. oidcd_start writes it, oidcd_stop
# removes it.
# The login page is a form (login, password); a wrong one answers 401 with
# the form again. Consent is implied. The client may authenticate with
# client_secret_basic or client_secret_post; in the Basic header, id and
# secret are form-urlencoded first (RFC 6749 2.3.1): oidc-provider decodes
# them, so a literal '+' there reads as a space.
# OIDCD_NETNS, if set, runs the provider and the probe in that network
# namespace (ip netns exec). OIDC_GARBAGE=1 when oidcd_start runs makes the
# token endpoint answer 200 with a body that is not JSON (Content-Type
# application/json all the same). The log is DIR/oidc.log.

. "$(dirname "${BASH_SOURCE[0]}")/daemon.sh"
. "$(dirname "${BASH_SOURCE[0]}")/npm.sh"

OIDC_PROVIDER_VERSION=8.8.1
OIDCD_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/oidc/provider.mjs

oidcd_install() {
    npm_cached "${OIDCD_CACHE:-/var/cache/tollgate-tests/oidc-provider}" oidc-provider "$OIDC_PROVIDER_VERSION"
}

oidcd_prepare() {
    local dir=$1 port=$2
    OIDCD_HOST=${OIDCD_HOST:-127.0.0.1}
    OIDCD_PORT=$port OIDCD_ISSUER=http://$OIDCD_HOST:$port
    OIDCD_CLIENT_ID=$3 OIDCD_CLIENT_SECRET=$4 OIDCD_REDIRECT_URI=$5
    OIDCD_PIDFILE=${OIDCD_PIDFILE:-$dir/oidcd.pid}
    mkdir -p "$dir" || return 1
    cp "$OIDCD_SRC" "$dir/provider.mjs" || return 1
    ln -sfn "${OIDCD_CACHE:-/var/cache/tollgate-tests/oidc-provider}/node_modules" "$dir/node_modules" || return 1
    printf '{}\n' > "$dir/accounts.json"
}

oidc_user() {
    local dir=$1
    OIDC_USER_EMAIL=${OIDC_USER_EMAIL:-} node -e '
const fs = require("fs");
const [file, name, password, ...groups] = process.argv.slice(1);
const all = JSON.parse(fs.readFileSync(file, "utf8"));
all[name] = { password, groups };
if (process.env.OIDC_USER_EMAIL) all[name].email = process.env.OIDC_USER_EMAIL;
fs.writeFileSync(file + ".new", JSON.stringify(all, null, 1) + "\n");
fs.renameSync(file + ".new", file);
' -- "$dir/accounts.json" "$2" "$3" "${@:4}"
}

# oidcd_in COMMAND...: run it in OIDCD_NETNS, if set.
oidcd_in() {
    if [ -n "${OIDCD_NETNS:-}" ]; then ip netns exec "$OIDCD_NETNS" "$@"; else "$@"; fi
}

# oidcd_bound: something listens on OIDCD_PORT.
oidcd_bound() {
    oidcd_in ss -Hltn "sport = :$OIDCD_PORT" | grep -q .
}

# oidcd_probe: the discovery document answers.
oidcd_probe() {
    oidcd_in curl -fsS -o /dev/null --max-time 1 "$OIDCD_ISSUER/.well-known/openid-configuration" 2>/dev/null
}

oidcd_start() {
    local dir=$1 cmd deadline=$((SECONDS + 10))
    if [ ! -f "$dir/node_modules/oidc-provider/package.json" ]; then
        echo "oidc-provider: not installed where $dir/node_modules points (oidcd_install first)" >&2
        return 1
    fi
    if oidcd_bound; then
        echo "oidc-provider: TCP port $OIDCD_PORT is already in use" >&2
        return 1
    fi
    # env and ip netns exec both exec, so $! is node's pid.
    cmd=(env OIDC_PORT="$OIDCD_PORT" OIDC_HOST="$OIDCD_HOST" OIDC_ISSUER="$OIDCD_ISSUER"
        OIDC_CLIENT_ID="$OIDCD_CLIENT_ID" OIDC_CLIENT_SECRET="$OIDCD_CLIENT_SECRET"
        OIDC_REDIRECT_URI="$OIDCD_REDIRECT_URI" OIDC_ACCOUNTS="$dir/accounts.json"
        OIDC_GARBAGE="${OIDC_GARBAGE:-0}"
        node "$dir/provider.mjs")
    [ -n "${OIDCD_NETNS:-}" ] && cmd=(ip netns exec "$OIDCD_NETNS" "${cmd[@]}")
    "${cmd[@]}" >> "$dir/oidc.log" 2>&1 &
    OIDCD_PID=$!
    echo "$OIDCD_PID" > "$OIDCD_PIDFILE"
    daemon_await oidc-provider "$OIDCD_PID" "$dir/oidc.log" "$deadline" oidcd_ready && return 0
    oidcd_stop
    return 1
}

oidcd_ready() { oidcd_bound && oidcd_probe; }

oidcd_stop() {
    [ -n "${OIDCD_PID:-}" ] || return 0
    daemon_stop "$OIDCD_PID"
    rm -f "${OIDCD_PIDFILE:-}"
    OIDCD_PID=
}
