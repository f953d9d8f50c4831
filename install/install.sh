#!/usr/bin/env bash
# tollgate installer for Debian 12 / Ubuntu 22.04+, as root.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bash install/install.sh [OPTIONS]

Builds tollgate from this source tree and installs it:
  hooks            /usr/local/libexec/tollgate/{auth-verify,...}
  admin CLI        /usr/local/bin/tollgate
  config           /etc/tollgate/tollgate.toml  (root:nogroup 0640, kept if present)
  sweep timer      /etc/systemd/system/tollgate-sweep.{service,timer} (enabled when systemd runs),
                   else /etc/cron.d/tollgate-sweep
  database         /var/lib/tollgate/tollgate.db (nobody:nogroup, created or migrated)
Installs OpenVPN when missing. Running it again changes nothing and keeps
all data.

Options:
  --server NAME    this host's server name written to a new config (default: the host name)
  --openvpn-user U OpenVPN's `user` (default: nobody); the database belongs to it
  --openvpn-group G OpenVPN's `group` (default: nogroup)
  --uninstall      remove binaries; keep config and database
  --purge          with --uninstall: also remove /etc/tollgate and /var/lib/tollgate
  -h, --help       this help
USAGE
}

SERVER_NAME=$(hostname -s 2>/dev/null || echo server)
OVPN_USER=nobody
OVPN_GROUP=nogroup
UNINSTALL=0
PURGE=0
while [ $# -gt 0 ]; do
    case $1 in
        --server) SERVER_NAME=$2; shift 2 ;;
        --openvpn-user) OVPN_USER=$2; shift 2 ;;
        --openvpn-group) OVPN_GROUP=$2; shift 2 ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
SRC=$(cd "$(dirname "$0")/.." && pwd)
LIBEXEC=/usr/local/libexec/tollgate
ETC=/etc/tollgate
VAR=/var/lib/tollgate
HOOKS="auth-verify client-connect client-disconnect"
TOOLS="tollgate gen-ovpn"

say() { printf 'tollgate install: %s\n' "$*"; }

if [ "$UNINSTALL" = 1 ]; then
    if [ -f /etc/systemd/system/tollgate-sweep.timer ]; then
        systemctl disable --now tollgate-sweep.timer 2>/dev/null || true
        rm -f /etc/systemd/system/tollgate-sweep.service /etc/systemd/system/tollgate-sweep.timer
        systemctl daemon-reload 2>/dev/null || true
    fi
    rm -f /etc/cron.d/tollgate-sweep
    rm -rf "$LIBEXEC"
    for t in $TOOLS; do rm -f "/usr/local/bin/$t"; done
    if [ "$PURGE" = 1 ]; then rm -rf "$ETC" "$VAR"; say "removed binaries, config and database"
    else say "removed binaries; kept $ETC and $VAR (--purge removes them)"; fi
    exit 0
fi

need=()
command -v openvpn >/dev/null || need+=(openvpn)
command -v cc >/dev/null || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "install.sh: cargo not found: install a Rust toolchain (1.80+, e.g. with rustup)" >&2; exit 1; }
getent passwd "$OVPN_USER" >/dev/null || { echo "install.sh: no user $OVPN_USER" >&2; exit 1; }
getent group "$OVPN_GROUP" >/dev/null || { echo "install.sh: no group $OVPN_GROUP" >&2; exit 1; }

say "building (release)"
(cd "$SRC" && cargo build --release --locked --quiet)
OUT=$SRC/target/x86_64-unknown-linux-gnu/release

install -d -m 755 "$LIBEXEC"
for b in $HOOKS; do
    [ -x "$OUT/$b" ] || continue
    cmp -s "$OUT/$b" "$LIBEXEC/$b" || { install -m 755 "$OUT/$b" "$LIBEXEC/$b"; say "installed $LIBEXEC/$b"; }
done
for b in $TOOLS; do
    [ -x "$OUT/$b" ] || continue
    cmp -s "$OUT/$b" "/usr/local/bin/$b" || { install -m 755 "$OUT/$b" "/usr/local/bin/$b"; say "installed /usr/local/bin/$b"; }
done

install -d -m 750 -o root -g "$OVPN_GROUP" "$ETC"
if [ ! -f "$ETC/tollgate.toml" ]; then
    umask 027
    cat > "$ETC/tollgate.toml" <<CONF
# tollgate configuration (docs/admin-guide.md lists every key)
database = "$VAR/tollgate.db"
server = "$SERVER_NAME"
# log_level = "info"
# busy_timeout = "5s"      # how long hooks wait for a busy database
# retention = "90d"        # how long auth events are kept
# management = "unix:/run/openvpn/tollgate.sock"   # for tollgate sweep
# status_file = "/run/openvpn/status.log"          # sweep's fallback (cannot kill)

# [argon2]                 # OWASP minimum by default (19 MiB, 2 passes)
# memory_kib = 19456
# iterations = 2
# parallelism = 1

# [lockout]
# max_failures = 10        # failures within the window that lock an account (0 = never)
# window = "15m"
# duration = "15m"
CONF
    chown root:"$OVPN_GROUP" "$ETC/tollgate.toml"
    chmod 640 "$ETC/tollgate.toml"
    say "wrote $ETC/tollgate.toml (server = $SERVER_NAME)"
fi

# The hooks run as the OpenVPN user: it owns the database directory.
install -d -m 770 -o "$OVPN_USER" -g "$OVPN_GROUP" "$VAR"
chown "$OVPN_USER:$OVPN_GROUP" "$VAR"
chmod 770 "$VAR"
/usr/local/bin/tollgate --config "$ETC/tollgate.toml" init | sed 's/^/tollgate install: /'

# The sweep: a systemd timer where systemd runs, else cron.
if [ -d /run/systemd/system ]; then
    for u in tollgate-sweep.service tollgate-sweep.timer; do
        cmp -s "$SRC/install/$u" "/etc/systemd/system/$u" || { install -m 644 "$SRC/install/$u" "/etc/systemd/system/$u"; CHANGED_UNITS=1; }
    done
    if [ "${CHANGED_UNITS:-0}" = 1 ]; then systemctl daemon-reload; say "installed the tollgate-sweep timer"; fi
    systemctl enable --now tollgate-sweep.timer >/dev/null 2>&1 || say "could not enable tollgate-sweep.timer"
else
    cmp -s "$SRC/install/tollgate-sweep.cron" /etc/cron.d/tollgate-sweep ||
        { install -m 644 "$SRC/install/tollgate-sweep.cron" /etc/cron.d/tollgate-sweep; say "installed /etc/cron.d/tollgate-sweep"; }
fi

cat <<NEXT
tollgate install: done. Next:
  tollgate server add $SERVER_NAME --host YOUR.PUBLIC.HOST --ca /etc/openvpn/server/ca.crt --tls-crypt /etc/openvpn/server/tc.key
  tollgate user add alice --server $SERVER_NAME
  and add the lines of $SRC/install/server.conf.snippet to your server.conf.
NEXT
