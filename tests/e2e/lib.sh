# End-to-end harness: a real OpenVPN 2.6 server and client in two network
# namespaces joined by a veth pair, a throwaway PKI, tollgate's hooks run by
# the server as nobody. Sourced by the test files; everything it creates is
# named after this run's PID and removed on exit, also on failure.
#
# Addresses: 192.0.2.0/24 (TEST-NET-1) on the veth, 10.99.0.0/24 in the
# tunnel. Nothing leaves the namespaces.

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${TOLLGATE_BIN:-$ROOT/target/x86_64-unknown-linux-gnu/release}
RUN_ID=$$
NS_SRV=tgs$RUN_ID
NS_CLI=tgc$RUN_ID
VETH_S=tgvs$RUN_ID
VETH_C=tgvc$RUN_ID
NS_OUT=tgo$RUN_ID               # "the internet" behind the server (internet_up)
VETH_P=tgvp$RUN_ID
VETH_O=tgvo$RUN_ID
OUT_IP=198.51.100.2             # TEST-NET-2
SRV_IP=192.0.2.1
CLI_IP=192.0.2.2
SRV_IP6=2001:db8::1             # documentation range, inside the namespaces only
CLI_IP6=2001:db8::2
# The server listens with SRV_PROTO on SRV_LOCAL; clients use CLI_PROTO and
# CLI_REMOTE. A test may change them before start_server / client_conf
# (udp6 on :: is one dual-stack socket for IPv4 and IPv6 clients).
SRV_PROTO=udp
SRV_LOCAL=$SRV_IP
CLI_PROTO=udp
CLI_REMOTE=$SRV_IP
W=$(mktemp -d "/tmp/${TG_TMP_PREFIX:-tg-e2e}.XXXXXX")
EXTRA_NS=()                     # more namespaces a test makes, removed on exit
PASSED=0
FAILED=0
FAILURES=()

# gone PID: the process has exited (a zombie waiting for init counts as gone).
gone() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
    [ "${st%% *}" = Z ]
}

cleanup() {
    local f pids=() p i left
    for f in "$W"/*.pid; do
        [ -f "$f" ] && pids+=("$(cat "$f")")
    done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    # Wait until they are really gone (OpenVPN takes a moment to remove its
    # tun device), then force any that are not.
    for ((i = 0; i < 70; i++)); do
        left=0
        for p in "${pids[@]}"; do
            gone "$p" || { left=1; [ "$i" = 50 ] && kill -9 "$p" 2>/dev/null; }
        done
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    ip netns del "$NS_SRV" 2>/dev/null
    ip netns del "$NS_CLI" 2>/dev/null
    ip netns del "$NS_OUT" 2>/dev/null
    for p in "${EXTRA_NS[@]}"; do ip netns del "$p" 2>/dev/null; done
    [ -d "$W/pg" ] && [ "${KEEP_E2E:-}" != 1 ] && bash "$ROOT/tests/pg-server.sh" stop "$W/pg"
    if [ "${KEEP_E2E:-}" = 1 ]; then echo "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '    %s\n' "$*"; }

pass() { PASSED=$((PASSED + 1)); printf 'ok    %s\n' "$1"; }
fail() {
    FAILED=$((FAILED + 1)); FAILURES+=("$1"); printf 'FAIL  %s\n' "$1"
    shift
    for f in "$@"; do
        [ -f "$f" ] && { echo "    --- last lines of $f"; tail -n 15 "$f" | sed 's/^/    | /'; }
    done
}

# check DESCRIPTION COMMAND...: pass when the command succeeds.
check() {
    local d=$1; shift
    if "$@"; then pass "$d"; else fail "$d" "$W/srv.log"; fi
    disconnect_all
}

# Stop every client still running, so one test's failure cannot leak into the next.
disconnect_all() {
    local f
    for f in "$W"/cli-*.pid; do
        [ -f "$f" ] || continue
        f=${f##*/cli-}; disconnect "${f%.pid}"
    done
}

summary() {
    echo
    for f in "${FAILURES[@]}"; do echo "failed: $f"; done
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

# wait_for FILE REGEX [SECONDS]: poll a log with a deadline.
wait_for() {
    local file=$1 re=$2 t=${3:-20} i
    for ((i = 0; i < t * 10; i++)); do
        grep -Eq -- "$re" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

tg() { "$W/bin/tollgate" --config "$W/tollgate.toml" "$@"; }

netns_up() {
    ip netns add "$NS_SRV"
    ip netns add "$NS_CLI"
    ip link add "$VETH_S" type veth peer name "$VETH_C"
    ip link set "$VETH_S" netns "$NS_SRV"
    ip link set "$VETH_C" netns "$NS_CLI"
    ip -n "$NS_SRV" addr add "$SRV_IP/24" dev "$VETH_S"
    ip -n "$NS_CLI" addr add "$CLI_IP/24" dev "$VETH_C"
    ip -n "$NS_SRV" link set "$VETH_S" up
    ip -n "$NS_CLI" link set "$VETH_C" up
    ip -n "$NS_SRV" link set lo up
    ip -n "$NS_CLI" link set lo up
}

# ipv6_up: after netns_up, IPv6 on the veth pair as well.
ipv6_up() {
    ip -n "$NS_SRV" addr add "$SRV_IP6/64" dev "$VETH_S" nodad
    ip -n "$NS_CLI" addr add "$CLI_IP6/64" dev "$VETH_C" nodad
}

# internet_up: after netns_up, a third namespace the server reaches by its
# default route (198.51.100.1 -> .2), and a default route for the client via
# the server, so tunnel traffic can be forwarded and NATed out of the server.
internet_up() {
    ip netns add "$NS_OUT"
    ip link add "$VETH_P" type veth peer name "$VETH_O"
    ip link set "$VETH_P" netns "$NS_SRV"
    ip link set "$VETH_O" netns "$NS_OUT"
    ip -n "$NS_SRV" addr add 198.51.100.1/24 dev "$VETH_P"
    ip -n "$NS_OUT" addr add "$OUT_IP/24" dev "$VETH_O"
    ip -n "$NS_SRV" link set "$VETH_P" up
    ip -n "$NS_OUT" link set "$VETH_O" up
    ip -n "$NS_OUT" link set lo up
    ip -n "$NS_SRV" route add default via "$OUT_IP"
    ip -n "$NS_CLI" route add default via "$SRV_IP"
}

pki() {
    local p=$W/pki
    mkdir -p "$p"
    (
        cd "$p" || exit 1
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout ca.key -out ca.crt -days 2 -subj /CN=tollgate-test-ca 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout server.key -out server.csr -subj /CN=server 2>/dev/null
        printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\n' > srv.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -out server.crt -days 2 -extfile srv.ext 2>/dev/null
        openvpn --genkey tls-crypt tc.key
    ) || { echo "PKI setup failed"; exit 1; }
}

# The store: SQLite in $W/db (the default), or with TOLLGATE_E2E_STORE=postgres
# a PostgreSQL server of this run's own (tests/pg-server.sh, a Unix socket in
# $W/pg) with a role and database "tollgate"; the hooks sign in with SCRAM,
# the password read from a pgpass file only root and the OpenVPN group read.
STORE=${TOLLGATE_E2E_STORE:-sqlite}

# store_up: start the PostgreSQL store (nothing for SQLite); prints the
# config's database value.
store_up() {
    if [ "$STORE" != postgres ]; then
        echo "$W/db/tollgate.db"
        return
    fi
    bash "$ROOT/tests/pg-server.sh" start "$W/pg" >&2 || { echo "PostgreSQL did not start" >&2; exit 1; }
    local pw
    pw=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
    pg_admin -c "CREATE ROLE tollgate LOGIN PASSWORD '$pw'" -c "CREATE DATABASE tollgate OWNER tollgate" >/dev/null ||
        { echo "cannot create the tollgate role and database" >&2; exit 1; }
    printf '*:*:tollgate:tollgate:%s\n' "$pw" > "$W/pgpass"
    chown root:nogroup "$W/pgpass"
    chmod 640 "$W/pgpass"
    echo "postgresql://tollgate@/tollgate?host=$W/pg&passfile=$W/pgpass"
}

# pg_admin PSQL_ARGS...: psql as the server's superuser, on the tollgate
# database once it exists.
pg_admin() {
    local db=postgres
    [ -f "$W/pgpass" ] && db=tollgate
    psql -X -q -v ON_ERROR_STOP=1 "postgresql://postgres@/$db?host=$W/pg" "$@"
}

# db_sql SQL: run statements on the store, whichever it is.
db_sql() {
    if [ "$STORE" = postgres ]; then
        pg_admin -c "$1"
    else
        python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.close()' \
            "$W/db/tollgate.db" "$1"
    fi
}

# setup [EXTRA_TOML]: namespaces, PKI, binaries, config and database.
setup() {
    for b in tollgate auth-verify; do
        [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: build with cargo build --release"; exit 1; }
    done
    chmod 755 "$W"
    mkdir -p "$W/bin" "$W/db" "$W/tmp"
    cp "$BIN"/tollgate "$BIN"/auth-verify "$W/bin/"
    for b in client-connect client-disconnect gen-ovpn tollgate-directory; do
        [ -x "$BIN/$b" ] && cp "$BIN/$b" "$W/bin/"
    done
    chmod 755 "$W/bin"/*
    # The database directory belongs to the OpenVPN user, as install makes it.
    chown nobody:nogroup "$W/db" "$W/tmp"
    chmod 770 "$W/db"
    local database spool=""
    database=$(store_up) || exit 1
    # Disconnect records wait beside an SQLite file; with PostgreSQL, here.
    [ "$STORE" = postgres ] && spool="spool = \"$W/db/spool\""
    cat > "$W/tollgate.toml" <<EOF
database = "$database"
$spool
server = "nl-1"
defer = "${TOLLGATE_E2E_DEFER:-auto}"
${1:-}
EOF
    chmod 644 "$W/tollgate.toml"
    netns_up
    pki
    tg init >/dev/null || { echo "tollgate init failed"; exit 1; }
    tg server add nl-1 --host "$SRV_IP" --ca "$W/pki/ca.crt" --tls-crypt "$W/pki/tc.key" >/dev/null
}

# start_server [EXTRA_DIRECTIVES]: the OpenVPN server, hooks as nobody.
start_server() {
    local hook_args="--config $W/tollgate.toml"
    {
        cat <<EOF
dev tun
proto $SRV_PROTO
local $SRV_LOCAL
port 1194
server 10.99.0.0 255.255.255.0
topology subnet
ca $W/pki/ca.crt
cert $W/pki/server.crt
key $W/pki/server.key
dh none
tls-crypt $W/pki/tc.key
verify-client-cert none
username-as-common-name
user nobody
group nogroup
persist-key
persist-tun
tmp-dir $W/tmp
script-security 2
management 127.0.0.1 7505
status $W/status.log 1
status-version 3
verb 3
EOF
        [ -x "$W/bin/auth-verify" ] && echo "auth-user-pass-verify \"$W/bin/auth-verify $hook_args\" via-file"
        [ -x "$W/bin/client-connect" ] && echo "client-connect \"$W/bin/client-connect $hook_args\""
        [ -x "$W/bin/client-disconnect" ] && echo "client-disconnect \"$W/bin/client-disconnect $hook_args\""
        printf '%s\n' "${1:-}"
    } > "$W/server.conf"
    : > "$W/srv.log"
    ip netns exec "$NS_SRV" openvpn --cd "$W" --config "$W/server.conf" \
        --writepid "$W/srv.pid" --daemon --log "$W/srv.log"
    wait_for "$W/srv.log" "Initialization Sequence Completed" 20 || {
        echo "OpenVPN server did not start:"; tail -n 30 "$W/srv.log"; exit 1
    }
}

stop_server() {
    [ -f "$W/srv.pid" ] && kill "$(cat "$W/srv.pid")" 2>/dev/null
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$(cat "$W/srv.pid" 2>/dev/null)" 2>/dev/null || break
        sleep 0.1
    done
    rm -f "$W/srv.pid"
}

# client_conf USER PASS [EXTRA]: a hand-written client profile.
client_conf() {
    printf '%s\n%s\n' "$1" "$2" > "$W/creds-$1"
    chmod 600 "$W/creds-$1"
    cat <<EOF
client
dev tun
proto $CLI_PROTO
remote $CLI_REMOTE 1194
nobind
remote-cert-tls server
ca $W/pki/ca.crt
tls-crypt $W/pki/tc.key
auth-user-pass $W/creds-$1
auth-retry none
explicit-exit-notify 1
verb 3
${3:-}
EOF
}

# connect NAME CONFIG_FILE: start a client in the client namespace.
connect() {
    local name=$1 conf=$2
    : > "$W/cli-$name.log"
    ip netns exec "$NS_CLI" openvpn --cd "$W" --config "$conf" \
        --writepid "$W/cli-$name.pid" --daemon --log "$W/cli-$name.log"
}

disconnect() {
    local name=$1 i pid
    pid=$(cat "$W/cli-$name.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$W/cli-$name.pid"
}

# login_ok NAME USER PASS: connects, then disconnects. Logs kept for failure output.
login_ok() {
    local name=$1
    client_conf "$2" "$3" "${4:-}" > "$W/client-$name.conf"
    connect "$name" "$W/client-$name.conf"
    if wait_for "$W/cli-$name.log" "Initialization Sequence Completed|AUTH_FAILED" 30 &&
        grep -q "Initialization Sequence Completed" "$W/cli-$name.log"; then
        disconnect "$name"; return 0
    fi
    disconnect "$name"; tail -n 5 "$W/cli-$name.log" | sed 's/^/    | /'; return 1
}

# login_refused NAME USER PASS REASON_REGEX: AUTH_FAILED with that client reason.
login_refused() {
    local name=$1 re=$4
    client_conf "$2" "$3" "${5:-}" > "$W/client-$name.conf"
    connect "$name" "$W/client-$name.conf"
    if wait_for "$W/cli-$name.log" "AUTH_FAILED|Initialization Sequence Completed" 30 &&
        grep -Eq "AUTH_FAILED,.*($re)" "$W/cli-$name.log"; then
        disconnect "$name"; return 0
    fi
    disconnect "$name"; grep -E "AUTH|Initialization" "$W/cli-$name.log" | tail -n 3 | sed 's/^/    | /'; return 1
}

# mgmt COMMAND: one command on the server's management interface; prints
# the reply up to its last line (END, SUCCESS: or ERROR:), then quits.
mgmt() {
    ip netns exec "$NS_SRV" bash -c '
        exec 3<>/dev/tcp/127.0.0.1/7505 || exit 1
        IFS= read -r -t 5 greeting <&3
        printf "%s\n" "$1" >&3
        while IFS= read -r -t 5 line <&3; do
            line=${line%$'"'"'\r'"'"'}
            case $line in ">"*) continue ;; esac
            printf "%s\n" "$line"
            case $line in END|SUCCESS:*|ERROR:*) break ;; esac
        done
        printf "quit\n" >&3' _ "$1"
}

# up NAME USER PASS [EXTRA]: connect and stay connected.
up() {
    local name=$1
    client_conf "$2" "$3" "${4:-}" > "$W/client-$name.conf"
    connect "$name" "$W/client-$name.conf"
    wait_for "$W/cli-$name.log" "Initialization Sequence Completed|AUTH_FAILED" 30 &&
        grep -q "Initialization Sequence Completed" "$W/cli-$name.log"
}

# client_has IP: the client namespace has that IPv4 address, within 3 s of
# the client saying it is up; else prints the addresses it has. (Twice an
# address was missing right after "Initialization Sequence Completed"
# though the server had pushed it; cause not found: the wait is for that,
# the printout to find it if it happens again.)
client_has() {
    local i addrs
    for ((i = 0; i < 30; i++)); do
        addrs=$(ip netns exec "$NS_CLI" ip -4 -o addr show)
        grep -q "inet $1/" <<<"$addrs" && return 0
        sleep 0.1
    done
    log "$addrs"
    return 1
}

# provisioned_as USER METHOD PLAN: the account exists with that auth method
# and plan (a directory user's first login created it).
provisioned_as() {
    local j; j=$(tg user show "$1" --json) || return 1
    [ "$(json 'd["auth_method"]' <<<"$j")" = "$2" ] && [ "$(json 'd["plan"]' <<<"$j")" = "$3" ]
}

# json EXPR: evaluate a Python expression over JSON on stdin (bound to `d`).
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# live_bytes USER: "in out" for USER from the management interface's status 3.
live_bytes() {
    mgmt "status 3" | awk -F'\t' -v u="$1" '$1=="CLIENT_LIST" && $10==u {print $6, $7}'
}

sweep() { ip netns exec "$NS_SRV" "$W/bin/tollgate" --config "$W/tollgate.toml" sweep --management 127.0.0.1:7505 "$@"; }

# interactive NAME PROFILE MODE USER PASS SECRET [OFFSET|CODE] [EXTRA_OPTS...]:
# start a client that asks for its credentials on its management interface
# and answer like a GUI (answer_client.py). Port 7506 in the client namespace.
interactive() {
    local name=$1 profile=$2 mode=$3 user=$4 pass=$5 secret=$6 arg=${7:-0}
    shift 7
    : > "$W/cli-$name.log"
    ip netns exec "$NS_CLI" openvpn --cd "$W" --config "$profile" \
        --management 127.0.0.1 7506 --management-query-passwords --management-hold \
        --writepid "$W/cli-$name.pid" --daemon --log "$W/cli-$name.log" "$@"
    ip netns exec "$NS_CLI" python3 "$ROOT/tests/e2e/answer_client.py" 7506 "$user" "$pass" "$secret" "$mode" "$arg" \
        > "$W/answer-$name.log" 2>&1
}

# connected NAME: the client finished connecting (or failed to).
connected() {
    wait_for "$W/cli-$1.log" "Initialization Sequence Completed|AUTH_FAILED|Exiting" 30 &&
        grep -q "Initialization Sequence Completed" "$W/cli-$1.log"
}

# refused NAME REGEX: the client got AUTH_FAILED with a reason matching REGEX.
refused() {
    wait_for "$W/cli-$1.log" "AUTH_FAILED|Initialization Sequence Completed" 30 &&
        grep -Eq "AUTH_FAILED.*($2)" "$W/cli-$1.log" ||
        { grep -E "AUTH|Initialization" "$W/cli-$1.log" | tail -n 3 | sed 's/^/    | /'; return 1; }
}
