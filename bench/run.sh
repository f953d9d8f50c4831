#!/usr/bin/env bash
# tollgate's benchmarks, side by side in one run. As root on Debian 12:
#   bash bench/run.sh          (about 10 minutes)
#   bash bench/run.sh 4 3      only sections 4 and 3 (6: LDAP and RADIUS, 7: SSO, 9: PostgreSQL; not in the default run)
#   bash bench/run.sh 8        only the instruction counts (callgrind)
# Results go to stdout; docs/benchmarks.md records a run and the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v openvpn >/dev/null && command -v valgrind >/dev/null && /usr/bin/python3 -c 'import argon2' 2>/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openvpn python3 python3-argon2 iputils-ping iproute2 valgrind >/dev/null
}
cargo build --release --locked --quiet
B=$PWD/target/x86_64-unknown-linux-gnu/release
W=$(mktemp -d /tmp/tg-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT

echo "== machine"
echo "$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
echo "$(uname -sr), $(openvpn --version | head -n 1 | cut -d' ' -f1-2), $(/usr/bin/python3 --version), $(rustc --version)"

want() { [[ " $SECTIONS " == *" $1 "* ]]; }

# server_record CONFIG: create the database CONFIG names, with server nl-1
# (a throwaway CA and tls-crypt key beside it).
server_record() {
    local key=${1%.toml}
    "$B/tollgate" --config "$1" init >/dev/null
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$key-ca.key" -out "$key-ca.crt" \
        -days 1 -subj /CN=bench 2>/dev/null
    openvpn --genkey tls-crypt "$key-tc.key"
    "$B/tollgate" --config "$1" server add nl-1 --host 192.0.2.1 --ca "$key-ca.crt" --tls-crypt "$key-tc.key" >/dev/null
}
SECTIONS="${*:-1 8 4 5 3}"

if want 1; then
echo "== 1+2: what OpenVPN waits for, 100k users and 1M past sessions, default argon2id (19 MiB, t=2)"
"$B/tollgate-bench" populate "$W/big.db" 100000 1000000
printf 'database = "%s"\nserver = "nl-1"\n' "$W/big.db" > "$W/big.toml"
"$B/tollgate-bench" hooks "$B" "$W/big.toml" 500
"$B/tollgate-bench" python "$B" "$W/big.toml" 100 "$PWD/bench/ref_hook.py"
fi

if want 8; then
echo "== 8: instructions each hook executes while OpenVPN waits (callgrind; the same from run to run)"
[ -f "$W/big.toml" ] || {
    "$B/tollgate-bench" populate "$W/big.db" 100000 1000000 cheap
    printf 'database = "%s"\nserver = "nl-1"\n' "$W/big.db" > "$W/big.toml"
}
bash bench/callgrind.sh "$B" "$W/big.toml"
fi

if want 4; then
echo "== 4: auth-verify inline as the sessions table grows (argon2 at minimum cost, so the database part shows)"
"$B/tollgate-bench" populate "$W/scale.db" 100000 0 cheap
printf 'database = "%s"\nserver = "nl-1"\n[argon2]\nmemory_kib = 8\niterations = 1\n' "$W/scale.db" > "$W/scale.toml"
prev=0
for n in 0 1000000 3000000 10000000; do
    "$B/tollgate-bench" add-sessions "$W/scale.db" $((n - prev)); prev=$n
    printf '%9d sessions: ' "$n"; "$B/tollgate-bench" auth "$W/scale.toml" "$B" 300
done

fi

if want 9; then
echo "== 9: each hook on each store, 10k users and 100k past sessions, argon2 at minimum cost (so the store's part shows)"
# SQLite; PostgreSQL 15 on a Unix socket, signed in without a password
# (peer or trust, as a local socket allows) and with SCRAM (a password, as
# over a network). The PostgreSQL database is the SQLite one, copied by
# migrate-store. Three interleaved rounds of each.
"$B/tollgate-bench" populate "$W/fleet.db" 10000 100000 cheap
cost='[argon2]\nmemory_kib = 8\niterations = 1\n'
printf "database = \"%s\"\nserver = \"nl-1\"\n$cost" "$W/fleet.db" > "$W/fleet-sqlite.toml"
chmod 755 "$W"   # (the server runs as postgres)
bash tests/pg-server.sh start "$W/pg" $$
pw=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
psql -X -q "postgresql://postgres@/postgres?host=$W/pg" -c "CREATE ROLE bench LOGIN PASSWORD '$pw'" -c "CREATE DATABASE tollgate OWNER bench"
printf '*:*:tollgate:bench:%s\n' "$pw" > "$W/pgpass"; chmod 600 "$W/pgpass"
"$B/tollgate" --config "$W/fleet-sqlite.toml" migrate-store --to "postgresql://bench@/tollgate?host=$W/pg&passfile=$W/pgpass" >/dev/null
printf "database = \"postgresql://postgres@/tollgate?host=%s\"\nspool = \"%s/spool\"\nserver = \"nl-1\"\n$cost" "$W/pg" "$W" > "$W/fleet-pg.toml"
printf "database = \"postgresql://bench@/tollgate?host=%s&passfile=%s/pgpass\"\nspool = \"%s/spool\"\nserver = \"nl-1\"\n$cost" "$W/pg" "$W" "$W" > "$W/fleet-pg-scram.toml"
for round in 1 2 3; do
    for store in sqlite pg pg-scram; do
        echo "-- $store, round $round"
        "$B/tollgate-bench" hooks "$B" "$W/fleet-$store.toml" 200
    done
done
fi

if want 5; then
echo "== 5: binary sizes"
for b in auth-verify client-connect client-disconnect tollgate-directory tollgate gen-ovpn; do
    printf '%-18s %9d bytes  %s\n' "$b" "$(stat -c %s "$B/$b")" "$(ldd "$B/$b" 2>&1 | tr -d '\t' | head -n 1)"
done

fi

if want 3; then
# ratios RESULTS: per round, tollgate (deferred) and auth-pam against bare
# and tollgate against auth-pam, for the worst extra latency and the time
# until the last login of the wave is through; the median of the rounds.
ratios() {
    python3 - "$1" <<'PY'
import re, statistics, sys
rounds = {}
for line in open(sys.argv[1]):
    m = re.match(r"round (\d+) storm\[(\w+)\]: .*worst extra latency ([\d.]+) ms; last connected after (\d+) ms", line)
    if m:
        rounds.setdefault(m[1], {})[m[2]] = (float(m[3]), float(m[4]))
for what, k in (("worst extra latency", 0), ("last connected", 1)):
    for a, b in (("deferred", "bare"), ("pam", "bare"), ("deferred", "pam")):
        r = [v[a][k] / v[b][k] for v in rounds.values() if a in v and b in v and v[b][k] > 0]
        if r:
            print(f"{what}: {a}/{b} per round {', '.join(f'{x:.2f}' for x in r)}; median {statistics.median(r):.2f}")
PY
}
echo "== 3: login storm of 20 on a real server; bare, tollgate (deferred) and auth-pam interleaved, 3 rounds"
for round in 1 2 3; do
    for mode in bare deferred pam; do
        bash bench/storm.sh $mode | grep '^storm' | sed "s/^/round $round /" | tee -a "$W/storm20.txt"
    done
done
ratios "$W/storm20.txt"
echo "-- once each, for reference"
for mode in inline python; do bash bench/storm.sh $mode | grep '^storm'; done
echo "== 3b: a wave of 50; bare, tollgate (deferred) and auth-pam interleaved, 3 rounds"
for round in 1 2 3; do
    for mode in bare deferred pam; do
        N=50 bash bench/storm.sh $mode | grep '^storm' | sed "s/^/round $round /" | tee -a "$W/storm50.txt"
    done
done
ratios "$W/storm50.txt"
fi

if want 6; then
echo "== 6: deferred auth of a local user, an ldap user (slapd) and a radius user (FreeRADIUS), on loopback"
PATH=$PATH:/usr/sbin
command -v slapd >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd >/dev/null
command -v freeradius >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq freeradius freeradius-utils >/dev/null
. tests/e2e/slapd.sh
. tests/e2e/radiusd.sh
slapd_prepare "$W/ldap"
{ ldap_person dana 'dana pass 123'; ldap_group vpn dana; } | slapd_load "$W/ldap"
slapd -f "$W/ldap/slapd.conf" -h "ldap://127.0.0.1:3891/"
trap 'kill "$(cat "$W/ldap/slapd.pid" 2>/dev/null)" 2>/dev/null; radiusd_stop; rm -rf "$W"' EXIT
radiusd_prepare "$W/radius" 18121 'bench secret'
radius_user "$W/radius" rudy 'rudy pass 123' 'Class := "eng"'
radiusd_start "$W/radius" || exit 1
printf 'bench secret\n' > "$W/radius.secret"
cat > "$W/ldap.toml" <<CONF
database = "$W/ldap.db"
server = "nl-1"
[radius]
servers = ["127.0.0.1:18121"]
secret_file = "$W/radius.secret"
[ldap]
url = "ldap://127.0.0.1:3891"
bind_dn = "cn=reader,$LDAP_BASE"
bind_password_file = "$W/ldap/reader.secret"
base_dn = "ou=people,$LDAP_BASE"
required_group = "cn=vpn,ou=groups,$LDAP_BASE"
group_search_base = "ou=groups,$LDAP_BASE"
CONF
tg6() { "$B/tollgate" --config "$W/ldap.toml" "$@" >/dev/null; }
server_record "$W/ldap.toml"
echo 'local pass 123' | tg6 user add lou --password-stdin --server nl-1
tg6 user add dana --auth ldap --server nl-1
tg6 user add rudy --auth radius --server nl-1
"$B/tollgate-bench" decide "$B" "$W/ldap.toml" lou 'local pass 123' 200
"$B/tollgate-bench" decide "$B" "$W/ldap.toml" dana 'dana pass 123' 200
"$B/tollgate-bench" decide "$B" "$W/ldap.toml" rudy 'rudy pass 123' 200
fi

if want 7; then
echo "== 7: what OpenVPN waits for at a single sign-on login (the link handed out), beside a local deferred login"
cat > "$W/sso.toml" <<CONF
database = "$W/sso.db"
server = "nl-1"
[oidc]
issuer = "https://idp.example.org"
client_id = "openvpn"
client_secret_file = "$W/oidc.secret"
redirect_url = "https://vpn.example.org/oidc/callback"
CONF
tg7() { "$B/tollgate" --config "$W/sso.toml" "$@" >/dev/null; }
server_record "$W/sso.toml"
echo 'local pass 123' | tg7 user add lou --password-stdin --auth local --server nl-1
tg7 user add sam --auth oidc --server nl-1
echo "-- SSO the default method ([auth] method = \"oidc\"): the link without a look-up"
{ cat "$W/sso.toml"; printf '[auth]\nmethod = "oidc"\n'; } > "$W/sso-default.toml"
"$B/tollgate-bench" sso "$B" "$W/sso-default.toml" lou 'local pass 123' sam 200
echo "-- a password default, sam set to oidc: the account's method looked up"
"$B/tollgate-bench" sso "$B" "$W/sso.toml" lou 'local pass 123' sam 200
echo "-- a password default, sam set to oidc, sam's profile from gen-ovpn (UV_TOLLGATE_SSO 1): no look-up"
"$B/tollgate-bench" sso "$B" "$W/sso.toml" lou 'local pass 123' sam 200 --hinted
fi
