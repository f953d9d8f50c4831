#!/usr/bin/env bash
# tollgate installer for Debian 12 / Ubuntu 22.04+, as root.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bash install/install.sh [OPTIONS]

Builds tollgate from this source tree and installs it:
  hooks            /usr/local/libexec/tollgate/{auth-verify,client-connect,client-disconnect}
                   and tollgate-directory (the LDAP client the auth worker runs)
  admin tools      /usr/local/bin/tollgate, /usr/local/bin/gen-ovpn
  docs             /usr/local/share/doc/tollgate/{admin-guide,design}.md
  man pages        /usr/local/share/man/man1/{tollgate,tollgate-*,gen-ovpn}.1
  completions      bash and zsh (/usr/local/share), fish (/etc/fish/completions), for tollgate and gen-ovpn
  config           /etc/tollgate/tollgate.toml  (root:nogroup 0640, kept if present)
  database         /var/lib/tollgate/tollgate.db (nobody:nogroup, created or migrated),
                   or with --database a shared PostgreSQL (schema created or migrated)
  sweep timer      /etc/systemd/system/tollgate-sweep.{service,timer} (enabled when systemd runs),
                   else /etc/cron.d/tollgate-sweep
  web pages        with --web-listen: /etc/systemd/system/tollgate-web.{socket,service},
                   the socket enabled; systemd starts `tollgate web` (as the OpenVPN
                   user) on the first connection and it exits after 5 idle minutes
Installs OpenVPN when missing. Running it again changes nothing and keeps
all data; it says "nothing changed" when that is so.

With --setup-server it also sets up a complete OpenVPN server NAME:
  PKI              /etc/openvpn/server/NAME/{ca.crt,ca.key,server.crt,server.key,tc.key}
                   (EC P-256, 10 years; keys 0600; never regenerated once there)
  server config    /etc/openvpn/server/NAME.conf: the three hooks, the management
                   socket /run/openvpn-server/NAME.sock, password-only clients
                   (kept as it is once there: edit it freely)
  tollgate         the server record (profiles: gen-ovpn USER SERVER) and
                   `management` in tollgate.toml, so that `tollgate sweep` can cut clients
  forwarding, NAT  net.ipv4.ip_forward=1 and iptables MASQUERADE of the VPN subnet out
                   of the NAT interface, now and at boot (tollgate-nat@NAME.service)
  service          openvpn-server@NAME enabled and started (systemd), else openvpn
                   started as a daemon (log: /var/log/openvpn/NAME.log)

Options:
  --server NAME      tollgate's name for this server, written to a new config and used
                     for the server record (default: the host name)
  --openvpn-user U   OpenVPN's `user` (default: nobody); the database belongs to it
  --openvpn-group G  OpenVPN's `group` (default: nogroup)
  --setup-server     also set up the OpenVPN server described above (needs --host)
  --host HOST        with --setup-server: the public name or address clients connect to
  --port PORT        with --setup-server: port (default: 1194)
  --proto udp|tcp    with --setup-server: protocol (default: udp)
  --subnet CIDR      with --setup-server: VPN address pool (default: 10.8.0.0/24)
  --name NAME        with --setup-server: OpenVPN instance name (default: tollgate)
  --dns ADDRESS      with --setup-server: DNS server pushed to clients (default: none)
  --nat-iface IF     with --setup-server: interface to NAT out of (default: the
                     interface of the default route)
  --no-firewall      with --setup-server: leave forwarding and NAT alone
  --no-start         with --setup-server: write everything, start and enable nothing
  --web-listen ADDR  serve single sign-on logins ([oidc]) and the self-service site
                     ([self_service]) on ADDR (e.g. 0.0.0.0:443, or
                     127.0.0.1:8080 behind a TLS reverse proxy) by socket activation
  --web-tls-cert F   with --web-listen: TLS certificate chain (PEM) that tollgate web serves
  --web-tls-key F    with --web-listen: its private key (PEM; stays root's: systemd passes
                     both to the service as credentials)
  --database URL     keep users, plans and accounting in a PostgreSQL database that many
                     servers share (postgresql://USER@HOST/DB?sslrootcert=CA.pem; the
                     admin guide's fleet section) instead of the local SQLite file
  --pgpass FILE      with --database: the role's password, in pgpass format; installed as
                     /etc/tollgate/pgpass (root:GROUP 0640) and named in the URL (passfile=)
  --create-database  create the role and database "tollgate" in the PostgreSQL running on
                     this machine (Debian's postgresql), with a random password in
                     /etc/tollgate/pgpass, and use it (over 127.0.0.1); kept if already there
  --metrics-textfile DIR
                     after every sweep, write `tollgate metrics` to DIR/tollgate.prom for
                     node_exporter's textfile collector (Debian's: /var/lib/prometheus/node-exporter)
  --uninstall        stop and disable what install set up, remove binaries and units;
                     keep config, database, server configs and PKI
  --purge            with --uninstall: also remove /etc/tollgate, /var/lib/tollgate and
                     the server configs and PKI that --setup-server wrote
  -h, --help         this help
USAGE
}

SERVER_NAME=
OVPN_USER=nobody
OVPN_GROUP=nogroup
UNINSTALL=0
PURGE=0
SETUP=0
HOST=
PORT=1194
PROTO=udp
SUBNET=10.8.0.0/24
NAME=tollgate
DNS=
NAT_IFACE=
FIREWALL=1
START=1
WEB_LISTEN=
WEB_CERT=
WEB_KEY=
METRICS_DIR=
DATABASE=
PGPASS=
CREATE_DB=0
arg() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "install.sh: $1 needs a value (see --help)" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case $1 in
        --server) arg "$@"; SERVER_NAME=$2; shift 2 ;;
        --openvpn-user) arg "$@"; OVPN_USER=$2; shift 2 ;;
        --openvpn-group) arg "$@"; OVPN_GROUP=$2; shift 2 ;;
        --setup-server) SETUP=1; shift ;;
        --host) arg "$@"; HOST=$2; shift 2 ;;
        --port) arg "$@"; PORT=$2; shift 2 ;;
        --proto) arg "$@"; PROTO=$2; shift 2 ;;
        --subnet) arg "$@"; SUBNET=$2; shift 2 ;;
        --name) arg "$@"; NAME=$2; shift 2 ;;
        --dns) arg "$@"; DNS=$2; shift 2 ;;
        --nat-iface) arg "$@"; NAT_IFACE=$2; shift 2 ;;
        --no-firewall) FIREWALL=0; shift ;;
        --web-listen) arg "$@"; WEB_LISTEN=$2; shift 2 ;;
        --web-tls-cert) arg "$@"; WEB_CERT=$2; shift 2 ;;
        --web-tls-key) arg "$@"; WEB_KEY=$2; shift 2 ;;
        --metrics-textfile) arg "$@"; METRICS_DIR=$2; shift 2 ;;
        --database) arg "$@"; DATABASE=$2; shift 2 ;;
        --pgpass) arg "$@"; PGPASS=$2; shift 2 ;;
        --create-database) CREATE_DB=1; shift ;;
        --no-start) START=0; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "install.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root"
SRC=$(cd "$(dirname "$0")/.." && pwd)
LIBEXEC=/usr/local/libexec/tollgate
ETC=/etc/tollgate
VAR=/var/lib/tollgate
OVPN_DIR=/etc/openvpn/server
MAN1=/usr/local/share/man/man1
BASH_COMP=/usr/local/share/bash-completion/completions
ZSH_COMP=/usr/local/share/zsh/site-functions
FISH_COMP=/etc/fish/completions
RUN_DIR=/run/openvpn-server
DOC=/usr/local/share/doc/tollgate
UNITS=/etc/systemd/system
HOOKS="auth-verify client-connect client-disconnect tollgate-directory"
TOOLS="tollgate gen-ovpn"
HAVE_SYSTEMD=0
[ -d /run/systemd/system ] && HAVE_SYSTEMD=1

say() { printf 'tollgate install: %s\n' "$*"; }
# changed MESSAGE: report a change; a run that reports none says so at the end.
CHANGED=0
changed() { CHANGED=1; say "$*"; }

# put SRC DEST MODE: install a file unless DEST already has this content and mode.
put() {
    if ! cmp -s "$1" "$2" || [ "$(stat -c %a "$2")" != "$3" ]; then
        install -m "$3" "$1" "$2"; changed "installed $2"
    fi
}

# A server set up by --setup-server is remembered in this file; uninstall
# reads it, and tollgate-nat@NAME.service takes SUBNET and NAT_IFACE from it.
setup_file() { echo "$ETC/setup-$1.env"; }

# Stop NAME's OpenVPN: its systemd unit, or the daemon install started.
stop_server() {
    local name=$1 pid
    if [ "$HAVE_SYSTEMD" = 1 ]; then
        systemctl disable --now "openvpn-server@$name.service" "tollgate-nat@$name.service" >/dev/null 2>&1 || true
    fi
    if [ -f "$RUN_DIR/$name.pid" ]; then
        pid=$(cat "$RUN_DIR/$name.pid")
        if [ -n "$pid" ] && grep -q openvpn "/proc/$pid/comm" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            say "stopped OpenVPN $name (pid $pid)"
        fi
        rm -f "$RUN_DIR/$name.pid"
    fi
}

if [ "$UNINSTALL" = 1 ]; then
    SHARED_DB=$(grep -s '^database *= *"postgres' "$ETC/tollgate.toml" || true)
    for f in "$ETC"/setup-*.env; do
        [ -f "$f" ] || continue
        # shellcheck disable=SC1090
        (
            . "$f"
            stop_server "$NAME"
            if [ "${FIREWALL:-0}" = 1 ] && [ -x "$LIBEXEC/nat" ]; then "$LIBEXEC/nat" down "$SUBNET" "$NAT_IFACE" || true; fi
            rm -rf "$UNITS/openvpn-server@$NAME.service.d/tollgate.conf"
            rmdir "$UNITS/openvpn-server@$NAME.service.d" 2>/dev/null || true
            rm -f "$RUN_DIR/status-$NAME.log" "$RUN_DIR/$NAME.sock"
            if [ "$PURGE" = 1 ]; then
                rm -rf "${OVPN_DIR:?}/$NAME.conf" "${OVPN_DIR:?}/$NAME" "/var/log/openvpn/$NAME.log"
                say "removed $OVPN_DIR/$NAME.conf and its PKI $OVPN_DIR/$NAME"
            else
                say "stopped OpenVPN $NAME; kept $OVPN_DIR/$NAME.conf and its PKI"
            fi
        )
    done
    if [ -f "$UNITS/tollgate-web.socket" ] && [ "$HAVE_SYSTEMD" = 1 ]; then
        systemctl disable --now tollgate-web.socket >/dev/null 2>&1 || true
        systemctl stop tollgate-web.service >/dev/null 2>&1 || true
    fi
    rm -f "$UNITS/tollgate-web.socket" "$UNITS/tollgate-web.service"
    if [ -f "$UNITS/tollgate-sweep.timer" ] && [ "$HAVE_SYSTEMD" = 1 ]; then
        systemctl disable --now tollgate-sweep.timer >/dev/null 2>&1 || true
    fi
    rm -f "$UNITS/tollgate-sweep.service" "$UNITS/tollgate-sweep.timer" "$UNITS/tollgate-nat@.service"
    # The metrics file --metrics-textfile had the sweep write.
    for f in "$UNITS/tollgate-sweep.service.d/metrics.conf" /etc/cron.d/tollgate-sweep; do
        prom=$(sed -n 's/.* metrics --write \([^ ]*\).*/\1/p' "$f" 2>/dev/null || true)
        [ -z "$prom" ] || rm -f "$prom"
    done
    rm -rf "$UNITS/tollgate-sweep.service.d"
    [ "$HAVE_SYSTEMD" = 1 ] && systemctl daemon-reload 2>/dev/null || true
    rm -f /etc/cron.d/tollgate-sweep
    rm -rf "$LIBEXEC" "$DOC"
    rm -f "$MAN1"/tollgate.1 "$MAN1"/tollgate-*.1 "$MAN1"/gen-ovpn.1
    for t in $TOOLS; do rm -f "$BASH_COMP/$t" "$ZSH_COMP/_$t" "$FISH_COMP/$t.fish"; done
    for t in $TOOLS; do rm -f "/usr/local/bin/$t"; done
    if [ "$PURGE" = 1 ]; then rm -rf "$ETC" "$VAR"; say "removed binaries, units, config and database"
    else say "removed binaries and units; kept $ETC and $VAR (--purge removes them)"; fi
    [ -n "$SHARED_DB" ] && say "the shared PostgreSQL database stays as it is: drop it yourself once no server uses it"
    exit 0
fi

# Check the server options before changing anything.
if [ "$SETUP" = 1 ]; then
    [ -n "$HOST" ] || die "--setup-server needs --host (the name or address clients connect to)"
    [[ $HOST =~ ^[A-Za-z0-9.:_-]+$ ]] || die "--host: not a host name or address: $HOST"
    [[ $NAME =~ ^[a-z0-9][a-z0-9_-]{0,31}$ ]] || die "--name: use 1-32 of a-z 0-9 _ - (got $NAME)"
    [[ $PORT =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "--port: not a port: $PORT"
    case $PROTO in udp|tcp) ;; *) die "--proto: udp or tcp (got $PROTO)" ;; esac
    [ -z "$DNS" ] || [[ $DNS =~ ^[0-9a-fA-F.:]+$ ]] || die "--dns: not an address: $DNS"
    [[ $SUBNET =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)/([0-9]+)$ ]] || die "--subnet: use a.b.c.d/n (got $SUBNET)"
    bits=${BASH_REMATCH[5]}
    [ "$bits" -ge 8 ] && [ "$bits" -le 29 ] || die "--subnet: prefix length 8 to 29 (got /$bits)"
    ip4=0
    for i in 1 2 3 4; do
        [ "${BASH_REMATCH[$i]}" -le 255 ] || die "--subnet: not an address: $SUBNET"
        ip4=$(( (ip4 << 8) | BASH_REMATCH[i] ))
    done
    mask=$(( (0xffffffff << (32 - bits)) & 0xffffffff ))
    dotted() { echo "$(( $1 >> 24 & 255 )).$(( $1 >> 16 & 255 )).$(( $1 >> 8 & 255 )).$(( $1 & 255 ))"; }
    NET_ADDR=$(dotted $(( ip4 & mask )))
    NET_MASK=$(dotted "$mask")
    SUBNET=$NET_ADDR/$bits
    if [ "$FIREWALL" = 1 ] && [ -z "$NAT_IFACE" ]; then
        NAT_IFACE=$(ip -4 route show default 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit }}')
        [ -n "$NAT_IFACE" ] || die "no default route to tell the NAT interface: pass --nat-iface IF (or --no-firewall)"
    fi
fi

# The store: the local SQLite file unless a PostgreSQL URL is given, or
# made here with --create-database.
if [ -n "$PGPASS" ]; then
    [ -n "$DATABASE" ] || die "--pgpass goes with --database URL"
    [ -f "$PGPASS" ] || die "--pgpass: no file $PGPASS"
fi
PG_PORT=
if [ "$CREATE_DB" = 1 ]; then
    [ -z "$DATABASE$PGPASS" ] || die "--create-database makes its own URL and password file: leave out --database and --pgpass"
    PG_PORT=$(runuser -u postgres -- psql -X -A -t -q -c 'SHOW port' 2>/dev/null) ||
        die "--create-database needs Debian's PostgreSQL running on this machine (apt-get install postgresql)"
    DATABASE="postgresql://tollgate@127.0.0.1:$PG_PORT/tollgate"
fi
if [ -n "$DATABASE" ]; then
    case $DATABASE in postgresql://*|postgres://*) ;;
        *) die "--database: a postgresql:// URL (SQLite, the default, needs no option)" ;; esac
    [[ $DATABASE != *[[:space:]\"\\]* ]] || die "--database: no spaces, quotes or backslashes in the URL"
    if [ -n "$PGPASS" ] || [ "$CREATE_DB" = 1 ]; then
        case $DATABASE in *passfile=*) die "--pgpass names the password file itself: drop passfile= from the URL" ;; esac
        case $DATABASE in *\?*) DATABASE="$DATABASE&passfile=$ETC/pgpass" ;; *) DATABASE="$DATABASE?passfile=$ETC/pgpass" ;; esac
    fi
    # A server's store is chosen once: moving its data is migrate-store's job.
    cfg_db=$(sed -n 's/^database *= *"\(.*\)".*/\1/p' "$ETC/tollgate.toml" 2>/dev/null | head -n 1 || true)
    if [ -n "$cfg_db" ] && [ "$cfg_db" != "$DATABASE" ]; then
        die "$ETC/tollgate.toml keeps this server's data in $cfg_db; install.sh does not switch stores (to move it: tollgate migrate-store --to URL, then set database in the config)"
    fi
fi

need=()
command -v openvpn >/dev/null || need+=(openvpn)
command -v cc >/dev/null || need+=(gcc libc6-dev)
if [ "$SETUP" = 1 ]; then
    command -v openssl >/dev/null || need+=(openssl)
    command -v ip >/dev/null || need+=(iproute2)
    [ "$FIREWALL" = 0 ] || command -v iptables >/dev/null || need+=(iptables)
fi
if [ ${#need[@]} -gt 0 ]; then
    changed "installing ${need[*]}"
    apt-get update -qq && APT_UPDATED=1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# A Rust toolchain: the one on the PATH when new enough, else the
# distribution's (Debian 12: cargo-web and rustc-web).
# shellcheck source=packages.sh
. "$SRC/install/packages.sh"
ensure_cargo install.sh
getent passwd "$OVPN_USER" >/dev/null || die "no user $OVPN_USER"
getent group "$OVPN_GROUP" >/dev/null || die "no group $OVPN_GROUP"

say "building (release)"
(cd "$SRC" && cargo build --release --locked --quiet)
OUT=${CARGO_TARGET_DIR:-$SRC/target}/x86_64-unknown-linux-gnu/release

install -d -m 755 "$LIBEXEC"
for b in $HOOKS; do put "$OUT/$b" "$LIBEXEC/$b" 755; done
for b in $TOOLS; do put "$OUT/$b" "/usr/local/bin/$b" 755; done
put "$SRC/install/tollgate-nat.sh" "$LIBEXEC/nat" 755
install -d -m 755 "$DOC"
for d in admin-guide.md design.md; do put "$SRC/docs/$d" "$DOC/$d" 644; done
# Man pages and completions, made by the tollgate just built from its own
# command definitions (and gen-ovpn's).
GEN=$(mktemp -d)
trap 'rm -rf "$GEN"' EXIT
"$OUT/tollgate" man "$GEN/man"
for t in $TOOLS; do
    "$OUT/tollgate" completions bash --for "$t" > "$GEN/$t.bash"
    "$OUT/tollgate" completions zsh --for "$t" > "$GEN/_$t"
    "$OUT/tollgate" completions fish --for "$t" > "$GEN/$t.fish"
done
install -d -m 755 "$MAN1" "$BASH_COMP" "$ZSH_COMP" "$FISH_COMP"
n=0
# put_count SRC DEST: put, counted instead of reported one by one.
put_count() { cmp -s "$1" "$2" && [ "$(stat -c %a "$2")" = 644 ] || { install -m 644 "$1" "$2"; n=$((n + 1)); }; }
for f in "$GEN"/man/*.1; do put_count "$f" "$MAN1/${f##*/}"; done
[ "$n" = 0 ] || changed "installed $n man pages in $MAN1"
for t in $TOOLS; do
    put "$GEN/$t.bash" "$BASH_COMP/$t" 644
    put "$GEN/_$t" "$ZSH_COMP/_$t" 644
    put "$GEN/$t.fish" "$FISH_COMP/$t.fish" 644
done

[ -d "$ETC" ] || changed "created $ETC"
install -d -m 750 -o root -g "$OVPN_GROUP" "$ETC"
WROTE_CONF=0
if [ ! -f "$ETC/tollgate.toml" ]; then
    WROTE_CONF=1
    umask 027
    cat > "$ETC/tollgate.toml" <<CONF
# tollgate configuration (docs/admin-guide.md lists every key)
database = "${DATABASE:-$VAR/tollgate.db}"
server = "${SERVER_NAME:-$(hostname -s 2>/dev/null || echo server)}"
# log_level = "info"
# busy_timeout = "5s"      # how long hooks wait for a busy database
# retention = "90d"        # how long auth events are kept
# management = "unix:/run/openvpn-server/tollgate.sock"   # for tollgate sweep
# status_file = "/run/openvpn-server/status-tollgate.log" # sweep's fallback (cannot kill)

# [argon2]                 # OWASP minimum by default (19 MiB, 2 passes)
# memory_kib = 19456
# iterations = 2
# parallelism = 1

# [lockout]
# max_failures = 10        # failures within the window that lock an account (0 = never)
# per_source = 30          # failures from one address within the window that block it (0 = never)
# window = "15m"
# duration = "15m"
CONF
    umask 022
    chown root:"$OVPN_GROUP" "$ETC/tollgate.toml"
    chmod 640 "$ETC/tollgate.toml"
    changed "wrote $ETC/tollgate.toml"
fi
# The name hooks use for this server is the config's, whatever --server says.
CFG_SERVER=$(sed -n 's/^server *= *"\(.*\)".*/\1/p' "$ETC/tollgate.toml" | head -n 1)
if [ -n "$SERVER_NAME" ] && [ "$SERVER_NAME" != "$CFG_SERVER" ]; then
    say "note: $ETC/tollgate.toml names this server \"$CFG_SERVER\"; --server $SERVER_NAME ignored"
fi

# The hooks run as the OpenVPN user: it owns the database directory.
if [ "$(stat -c %U:%G:%a "$VAR" 2>/dev/null)" != "$OVPN_USER:$OVPN_GROUP:770" ]; then
    install -d -m 770 -o "$OVPN_USER" -g "$OVPN_GROUP" "$VAR"
    chown "$OVPN_USER:$OVPN_GROUP" "$VAR"; chmod 770 "$VAR"
    changed "made $VAR ($OVPN_USER:$OVPN_GROUP 0770)"
fi

# A shared PostgreSQL: the role's password file, readable by the hooks
# (the OpenVPN group) and written only by root.
if [ -n "$PGPASS" ] && { ! cmp -s "$PGPASS" "$ETC/pgpass" ||
    [ "$(stat -c %a:%U:%G "$ETC/pgpass")" != "640:root:$OVPN_GROUP" ]; }; then
    install -m 640 -o root -g "$OVPN_GROUP" "$PGPASS" "$ETC/pgpass"
    changed "installed $ETC/pgpass"
fi
if [ "$CREATE_DB" = 1 ]; then
    # As PostgreSQL's superuser over its socket; the password goes on
    # standard input, never the command line, and not into the server's log.
    pg() { runuser -u postgres -- psql -X -A -t -q -v ON_ERROR_STOP=1 "$@"; }
    if [ "$(pg -c "SELECT 1 FROM pg_roles WHERE rolname = 'tollgate'")" != 1 ]; then
        pw=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
        printf '127.0.0.1:%s:tollgate:tollgate:%s\n' "$PG_PORT" "$pw" > "$GEN/pgpass"
        printf "SET log_statement = 'none'; SET log_min_error_statement = 'panic'; CREATE ROLE tollgate LOGIN PASSWORD '%s';\n" "$pw" | pg
        install -m 640 -o root -g "$OVPN_GROUP" "$GEN/pgpass" "$ETC/pgpass"
        changed "created the PostgreSQL role tollgate (its password: $ETC/pgpass)"
        say "more servers share this store with: install.sh --database 'postgresql://tollgate@THIS-HOST/tollgate?sslrootcert=CA.pem' --pgpass FILE (once PostgreSQL here listens with TLS and pg_hba.conf lets them in: see the admin guide)"
    elif [ ! -f "$ETC/pgpass" ]; then
        die "PostgreSQL has a role tollgate already, but $ETC/pgpass is missing: give its password with --database URL --pgpass FILE"
    fi
    if [ "$(pg -c "SELECT 1 FROM pg_database WHERE datname = 'tollgate'")" != 1 ]; then
        pg -c "CREATE DATABASE tollgate OWNER tollgate"
        changed "created the PostgreSQL database tollgate"
    fi
fi
if ! init=$(/usr/local/bin/tollgate --config "$ETC/tollgate.toml" init 2>&1); then
    # A config this run wrote goes again, so that a corrected rerun starts afresh.
    [ "$WROTE_CONF" = 0 ] || rm -f "$ETC/tollgate.toml"
    die "$init"
fi
case $init in *"up to date"*) ;; *) changed "$init" ;; esac

# The sweep: a systemd timer where systemd runs, else cron. With
# --metrics-textfile each sweep is followed by `tollgate metrics`, also when
# the sweep failed (the metrics then say so).
metrics_cmd=
if [ -n "$METRICS_DIR" ]; then
    case $METRICS_DIR in /*) ;; *) die "--metrics-textfile needs an absolute directory" ;; esac
    [ -d "$METRICS_DIR" ] || { install -d -m 755 "$METRICS_DIR"; changed "made $METRICS_DIR"; }
    metrics_cmd="/usr/local/bin/tollgate --config $ETC/tollgate.toml metrics --write $METRICS_DIR/tollgate.prom"
fi
if [ "$HAVE_SYSTEMD" = 1 ]; then
    before=$CHANGED; CHANGED=0
    for u in tollgate-sweep.service tollgate-sweep.timer; do put "$SRC/install/$u" "$UNITS/$u" 644; done
    if [ -n "$metrics_cmd" ]; then
        mkdir -p "$UNITS/tollgate-sweep.service.d"
        printf '[Service]\nExecStopPost=%s\n' "$metrics_cmd" > "$GEN/metrics.conf"
        put "$GEN/metrics.conf" "$UNITS/tollgate-sweep.service.d/metrics.conf" 644
    fi
    [ "$CHANGED" = 1 ] && systemctl daemon-reload
    [ "$before" = 1 ] && CHANGED=1
    systemctl is-enabled --quiet tollgate-sweep.timer 2>/dev/null ||
        { systemctl enable --now tollgate-sweep.timer >/dev/null 2>&1 && changed "enabled tollgate-sweep.timer" ||
            say "could not enable tollgate-sweep.timer"; }
else
    if [ -n "$metrics_cmd" ]; then
        sed "s|sweep >/dev/null\$|sweep >/dev/null; $metrics_cmd|" "$SRC/install/tollgate-sweep.cron" > "$GEN/tollgate-sweep.cron"
        put "$GEN/tollgate-sweep.cron" /etc/cron.d/tollgate-sweep 644
    elif ! grep -q ' metrics --write ' /etc/cron.d/tollgate-sweep 2>/dev/null; then
        put "$SRC/install/tollgate-sweep.cron" /etc/cron.d/tollgate-sweep 644
    fi
fi

# The single sign-on pages: systemd listens, and starts tollgate web (as
# the OpenVPN user, who owns the database) only when a browser connects.
if [ -n "$WEB_LISTEN" ]; then
    [ "$HAVE_SYSTEMD" = 1 ] || die "--web-listen needs systemd (elsewhere run tollgate web --listen ADDR yourself)"
    tls=
    if [ -n "$WEB_CERT$WEB_KEY" ]; then
        [ -f "$WEB_CERT" ] && [ -f "$WEB_KEY" ] || die "--web-tls-cert and --web-tls-key name two existing files"
        WEB_CERT=$(readlink -f "$WEB_CERT") WEB_KEY=$(readlink -f "$WEB_KEY")
        tls=" --tls-cert %d/tls.crt --tls-key %d/tls.key"
    fi
    unit_dir=$(mktemp -d)
    cat > "$unit_dir/tollgate-web.socket" <<EOF
[Unit]
Description=tollgate web: single sign-on login pages (socket)
Documentation=file://$DOC/admin-guide.md

[Socket]
ListenStream=$WEB_LISTEN

[Install]
WantedBy=sockets.target
EOF
    cat > "$unit_dir/tollgate-web.service" <<EOF
[Unit]
Description=tollgate web: single sign-on login pages
Documentation=file://$DOC/admin-guide.md
Requires=tollgate-web.socket
After=network.target

[Service]
ExecStart=/usr/local/bin/tollgate --config $ETC/tollgate.toml web --idle-exit 300$tls
User=$OVPN_USER
Group=$OVPN_GROUP
$([ -n "$tls" ] && printf 'LoadCredential=tls.crt:%s\nLoadCredential=tls.key:%s\n' "$WEB_CERT" "$WEB_KEY")
ProtectSystem=strict
ReadWritePaths=$VAR
ProtectHome=true
PrivateTmp=true
PrivateDevices=true
NoNewPrivileges=true
EOF
    before=$CHANGED; CHANGED=0
    for u in tollgate-web.socket tollgate-web.service; do put "$unit_dir/$u" "$UNITS/$u" 644; done
    rm -rf "$unit_dir"
    if [ "$CHANGED" = 1 ]; then
        systemctl daemon-reload
        # A new address or certificate: the next connection starts afresh.
        systemctl stop tollgate-web.service >/dev/null 2>&1 || true
        systemctl restart tollgate-web.socket >/dev/null 2>&1 || true
    fi
    [ "$before" = 1 ] && CHANGED=1
    systemctl is-enabled --quiet tollgate-web.socket 2>/dev/null ||
        { systemctl enable --now tollgate-web.socket >/dev/null 2>&1 && changed "enabled tollgate-web.socket on $WEB_LISTEN" ||
            die "could not enable tollgate-web.socket (systemctl status tollgate-web.socket)"; }
    grep -q '^\[oidc\]' "$ETC/tollgate.toml" ||
        say "note: tollgate web serves [oidc] logins: add an [oidc] section to $ETC/tollgate.toml (see the admin guide)"
fi

if [ "$SETUP" = 1 ]; then
    PKI=$OVPN_DIR/$NAME
    CONF=$OVPN_DIR/$NAME.conf
    SOCK=$RUN_DIR/$NAME.sock
    install -d -m 755 "$OVPN_DIR"
    [ -d "$PKI" ] || changed "created $PKI"
    install -d -m 700 "$PKI"

    # PKI: a CA and a server certificate (EC P-256), and a tls-crypt key.
    # Made once; a second run never replaces a key clients already trust.
    ec() { openssl req "$@" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 2>/dev/null; }
    if [ ! -s "$PKI/ca.crt" ] || [ ! -s "$PKI/ca.key" ]; then
        (umask 077 && ec -x509 -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -subj "/CN=tollgate $NAME CA") ||
            die "openssl could not make the CA"
        changed "made the CA $PKI/ca.crt"
    fi
    if [ ! -s "$PKI/server.crt" ] || [ ! -s "$PKI/server.key" ]; then
        (
            umask 077 && cd "$PKI" &&
                ec -keyout server.key -out server.csr -subj "/CN=$NAME" &&
                printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\n' > server.ext &&
                openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
                    -days 3650 -extfile server.ext -out server.crt 2>/dev/null &&
                rm -f server.csr server.ext
        ) || die "openssl could not make the server certificate"
        changed "made the server certificate $PKI/server.crt"
    fi
    if [ ! -s "$PKI/tc.key" ]; then
        (umask 077 && openvpn --genkey tls-crypt "$PKI/tc.key") || die "openvpn could not make the tls-crypt key"
        changed "made the tls-crypt key $PKI/tc.key"
    fi
    chmod 600 "$PKI/ca.key" "$PKI/server.key" "$PKI/tc.key"
    chmod 644 "$PKI/ca.crt" "$PKI/server.crt"

    if [ ! -f "$CONF" ]; then
        hook_args="--config $ETC/tollgate.toml"
        {
            cat <<EOF
# OpenVPN server "$NAME", written by tollgate's install.sh --setup-server.
# install.sh never rewrites this file once it is there: edit it freely.
port $PORT
proto $PROTO
dev tun
topology subnet
server $NET_ADDR $NET_MASK
ca $PKI/ca.crt
cert $PKI/server.crt
key $PKI/server.key
dh none
tls-crypt $PKI/tc.key
keepalive 10 60
persist-key
persist-tun
user $OVPN_USER
group $OVPN_GROUP
push "redirect-gateway def1 bypass-dhcp"
EOF
            [ -z "$DNS" ] || echo "push \"dhcp-option DNS $DNS\""
            [ "$PROTO" = udp ] && echo "explicit-exit-notify 1"
            cat <<EOF

# tollgate: users log in with a name and password (and a TOTP code when
# enrolled); tollgate's limits decide how many connections a user may have.
verify-client-cert none
username-as-common-name
duplicate-cn
script-security 2
auth-user-pass-verify "$LIBEXEC/auth-verify $hook_args" via-file
client-connect "$LIBEXEC/client-connect $hook_args"
client-disconnect "$LIBEXEC/client-disconnect $hook_args"
# Renegotiations and reconnects within the session use a token, not the
# password or a TOTP code again.
auth-gen-token 0 external-auth
# For tollgate sweep: live byte counts, and cutting clients over their limits.
management $SOCK unix
verb 3
EOF
        } > "$CONF"
        chmod 644 "$CONF"
        changed "wrote $CONF"
    elif ! grep -q "$LIBEXEC/auth-verify" "$CONF"; then
        say "note: $CONF exists and does not call $LIBEXEC/auth-verify; kept as it is"
    fi

    # tollgate.toml: sweep's way to the management socket, before any [table].
    if ! grep -Eq '^[[:space:]]*management[[:space:]]*=' "$ETC/tollgate.toml"; then
        awk -v line="management = \"unix:$SOCK\"" '
            !done && /^[[:space:]]*\[/ { print line; print ""; done = 1 }
            { print } END { if (!done) print line }' "$ETC/tollgate.toml" > "$ETC/tollgate.toml.new"
        chown root:"$OVPN_GROUP" "$ETC/tollgate.toml.new"; chmod 640 "$ETC/tollgate.toml.new"
        mv "$ETC/tollgate.toml.new" "$ETC/tollgate.toml"
        changed "set management = \"unix:$SOCK\" in $ETC/tollgate.toml"
    fi

    # The server record: what gen-ovpn puts in profiles.
    if ! /usr/local/bin/tollgate --config "$ETC/tollgate.toml" server show "$CFG_SERVER" >/dev/null 2>&1; then
        /usr/local/bin/tollgate --config "$ETC/tollgate.toml" server add "$CFG_SERVER" --host "$HOST" --port "$PORT" \
            --proto "$PROTO" --ca "$PKI/ca.crt" --tls-crypt "$PKI/tc.key" >/dev/null
        changed "added server $CFG_SERVER ($HOST $PORT/$PROTO)"
    fi

    # Remembered for tollgate-nat@NAME.service and for --uninstall.
    setup=$(printf '# written by install.sh --setup-server\nNAME=%s\nSUBNET=%s\nNAT_IFACE=%s\nFIREWALL=%s' \
        "$NAME" "$SUBNET" "$NAT_IFACE" "$FIREWALL")
    if [ "$setup" != "$(cat "$(setup_file "$NAME")" 2>/dev/null)" ]; then
        (umask 077 && printf '%s\n' "$setup" > "$(setup_file "$NAME")")
        changed "wrote $(setup_file "$NAME")"
    fi

    # Forwarding and NAT, in this network namespace.
    if [ "$FIREWALL" = 1 ]; then
        nat=$("$LIBEXEC/nat" up "$SUBNET" "$NAT_IFACE") || die "could not set up forwarding and NAT"
        while IFS= read -r line; do [ -z "$line" ] || changed "$line"; done <<<"$nat"
    fi

    if [ "$HAVE_SYSTEMD" = 1 ]; then
        before=$CHANGED; CHANGED=0
        put "$SRC/install/tollgate-nat@.service" "$UNITS/tollgate-nat@.service" 644
        install -d -m 755 "$UNITS/openvpn-server@$NAME.service.d"
        put "$SRC/install/openvpn-server-dropin.conf" "$UNITS/openvpn-server@$NAME.service.d/tollgate.conf" 644
        [ "$CHANGED" = 1 ] && systemctl daemon-reload
        [ "$before" = 1 ] && CHANGED=1
    fi

    if [ "$START" = 1 ]; then
        if [ "$HAVE_SYSTEMD" = 1 ]; then
            units=()
            [ "$FIREWALL" = 1 ] && units+=("tollgate-nat@$NAME.service")
            units+=("openvpn-server@$NAME.service")
            for u in "${units[@]}"; do
                systemctl is-enabled --quiet "$u" 2>/dev/null || { systemctl enable "$u" >/dev/null 2>&1 && changed "enabled $u"; }
                systemctl is-active --quiet "$u" || { systemctl start "$u" && changed "started $u"; } ||
                    die "$u did not start: see journalctl -u $u"
            done
        else
            pid=$(cat "$RUN_DIR/$NAME.pid" 2>/dev/null || true)
            if [ -z "$pid" ] || ! grep -q openvpn "/proc/$pid/comm" 2>/dev/null; then
                install -d -m 710 "$RUN_DIR"
                install -d -m 755 /var/log/openvpn
                log=/var/log/openvpn/$NAME.log
                : > "$log"
                openvpn --daemon "openvpn-$NAME" --cd "$OVPN_DIR" --config "$CONF" --writepid "$RUN_DIR/$NAME.pid" \
                    --status "$RUN_DIR/status-$NAME.log" 10 --status-version 2 --log-append "$log" ||
                    die "OpenVPN did not start: see $log"
                for _ in $(seq 200); do grep -q "Initialization Sequence Completed" "$log" && break; sleep 0.1; done
                grep -q "Initialization Sequence Completed" "$log" || die "OpenVPN did not start: see $log"
                changed "started OpenVPN $NAME (no systemd: not started at boot; log $log)"
            fi
        fi
    fi
fi

if [ "$CHANGED" = 0 ]; then say "nothing changed"; fi
say "done."
if [ "$SETUP" = 1 ]; then
    if [ "$START" = 0 ]; then
        echo "Not started (--no-start). To start it:"
        if [ "$HAVE_SYSTEMD" = 1 ]; then
            echo "  systemctl enable --now $([ "$FIREWALL" = 1 ] && echo "tollgate-nat@$NAME ")openvpn-server@$NAME"
        else
            echo "  openvpn --daemon --cd $OVPN_DIR --config $NAME.conf --writepid $RUN_DIR/$NAME.pid"
        fi
    fi
    cat <<NEXT
Next:
  tollgate user add alice --server $CFG_SERVER
  gen-ovpn alice $CFG_SERVER --out alice.ovpn
NEXT
else
    cat <<NEXT
Next: set up a server with --setup-server --host YOUR.PUBLIC.HOST, or by hand:
  tollgate server add $CFG_SERVER --host YOUR.PUBLIC.HOST --ca /etc/openvpn/server/ca.crt --tls-crypt /etc/openvpn/server/tc.key
  tollgate user add alice --server $CFG_SERVER
  and add the lines of $SRC/install/server.conf.snippet to your server.conf.
NEXT
fi
