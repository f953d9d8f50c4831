#!/usr/bin/env bash
# See tollgate work before installing anything: builds it, then runs a real
# OpenVPN server and client in two throwaway network namespaces with a demo
# user, logs in, sends traffic, disconnects, and shows what tollgate recorded.
# Everything lives in a temporary directory and two namespaces named after
# this run, and all of it is removed on exit (also on Ctrl-C or failure).
# The host's interfaces, routes, firewall and /etc are not touched.
#   sudo bash install/demo.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root (network namespaces, OpenVPN's tun device)" >&2; exit 1; }
case ${1:-} in -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

. "$ROOT/install/packages.sh"
ensure_packages demo.sh openvpn=openvpn ip=iproute2 openssl=openssl ping=iputils-ping cc=gcc,libc6-dev
[ -c /dev/net/tun ] || { echo "demo.sh: no /dev/net/tun on this machine" >&2; exit 1; }

echo "== building tollgate (release)"
(cd "$ROOT" && cargo build --release --locked --quiet) || exit 1

# The end-to-end test harness: namespaces, PKI, server and client helpers,
# and the cleanup trap.
TG_TMP_PREFIX=tg-demo
# shellcheck source=../tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
step() { printf '\n== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@" | sed 's/^/  /'; }
tollgate() { tg "$@"; }

step "a server (namespace $NS_SRV, 192.0.2.1) and a client (namespace $NS_CLI, 192.0.2.2) in $W"
setup
PW=demo-password-$RANDOM$RANDOM
show tollgate plan add basic --quota 1GiB --period month --max-session 8h --max-connections 2
echo "$PW" | show tollgate user add demo --password-stdin --plan basic --server nl-1
start_server
echo "OpenVPN server up; its hooks run as nobody and share $W/db/tollgate.db"

step "a client profile for demo, made by gen-ovpn (key material cut short here)"
"$W/bin/gen-ovpn" --config "$W/tollgate.toml" demo nl-1 --out "$W/demo.ovpn" 2>/dev/null
sed -e '/^-----BEGIN/,/^-----END/{/^-----/!d}' "$W/demo.ovpn" | sed 's/^/  /'

step "demo logs in with that profile"
printf 'demo\n%s\n' "$PW" > "$W/creds-demo"
chmod 600 "$W/creds-demo"
: > "$W/cli-demo.log"
ip netns exec "$NS_CLI" openvpn --cd "$W" --config "$W/demo.ovpn" --auth-user-pass "$W/creds-demo" \
    --writepid "$W/cli-demo.pid" --daemon --log "$W/cli-demo.log"
if ! wait_for "$W/cli-demo.log" "Initialization Sequence Completed|AUTH_FAILED" 30 ||
    ! grep -q "Initialization Sequence Completed" "$W/cli-demo.log"; then
    echo "demo.sh: the client did not connect; its log:" >&2; tail -n 20 "$W/cli-demo.log" >&2; exit 1
fi
hook_log() { grep -E "^tollgate ($1):" "$W/srv.log" | sed 's/^tollgate /  server log: /'; }
hook_log "auth-verify|client-connect"
grep -m1 "Initialization Sequence Completed" "$W/cli-demo.log" | cut -d' ' -f3- | sed 's/^/  client log: /'

step "traffic through the tunnel"
show ip netns exec "$NS_CLI" ping -c 5 -i 0.2 10.99.0.1
show tollgate sessions

step "the admin cuts demo off (management interface: kill demo); client-disconnect accounts the session"
mgmt "kill demo" | sed 's/^/  /'
wait_for "$W/srv.log" "client-disconnect.*demo" 15 || echo "  (client-disconnect not seen yet)"
hook_log client-disconnect
show tollgate sessions
show tollgate usage

step "a wrong password is refused"
printf 'demo\nnot-the-password\n' > "$W/creds-bad"
: > "$W/cli-bad.log"
ip netns exec "$NS_CLI" openvpn --cd "$W" --config "$W/demo.ovpn" --auth-user-pass "$W/creds-bad" \
    --writepid "$W/cli-bad.pid" --daemon --log "$W/cli-bad.log"
wait_for "$W/cli-bad.log" "AUTH_FAILED" 30 && grep -m1 AUTH_FAILED "$W/cli-bad.log" | cut -d' ' -f3- | sed 's/^/  client log: /'
wait_for "$W/srv.log" "auth-verify: DENY" 5 && hook_log auth-verify | tail -n 1
disconnect bad
show tollgate events --limit 5

step "cleaning up: stopping OpenVPN, removing $NS_SRV, $NS_CLI and $W"
echo "To install for real: bash install/install.sh --setup-server --host YOUR.PUBLIC.HOST (see docs/admin-guide.md)"
