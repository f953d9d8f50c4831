#!/usr/bin/env bash
# install/install.sh --setup-server for real: it installs into the host's
# /usr/local, /etc and /var/lib (and removes it all again on exit), but it
# runs inside the server namespace, so its forwarding and NAT rules and the
# OpenVPN server it starts never touch the host's network. A third namespace
# plays the internet behind the server's NAT.
. "$(dirname "$0")/lib.sh"

if [ -e /etc/tollgate ] || [ -e /usr/local/bin/tollgate ] || [ -e /usr/local/libexec/tollgate ]; then
    echo "test_install.sh: tollgate is installed on this machine; this test installs and purges it,"
    echo "so it will not run here (run it on a fresh machine, as CI does)"
    fail "test_install.sh could run (tollgate already installed here)"
    summary; exit 1
fi

# With TOLLGATE_E2E_STORE=postgres, install.sh --create-database makes the
# store in Debian's own PostgreSQL cluster ("main"), which this test starts
# inside the server namespace (its 127.0.0.1 is the namespace's) and, on
# exit, empties of what install made and stops again.
PG_CLUSTER=
if [ "$STORE" = postgres ]; then
    read -r PG_CLUSTER PG_PORT < <(pg_lsclusters -h 2>/dev/null | awk '$2 == "main" { print $1, $3; exit }')
    if [ -z "$PG_CLUSTER" ] || pg_lsclusters -h | awk -v v="$PG_CLUSTER" '$1 == v && $2 == "main"' | grep -q online; then
        echo "test_install.sh: Debian's PostgreSQL cluster main is missing or running; this test starts and stops it"
        fail "test_install.sh could run on PostgreSQL (cluster main ${PG_CLUSTER:-missing}, or online)"
        summary; exit 1
    fi
fi

NAME=tge$RUN_ID                 # the OpenVPN instance
SERVER=e2e                      # tollgate's server record
INSTALL=$ROOT/install/install.sh
PW='a long and correct password'
# Where systemd runs, install.sh would start the server as a unit in the
# host's namespace: the test then starts the written server.conf itself.
START_OPT=
[ -d /run/systemd/system ] && START_OPT=--no-start

cluster_psql() { runuser -u postgres -- psql -X -A -t -q -v ON_ERROR_STOP=1 "$@"; }
install_cleanup() {
    ip netns exec "$NS_SRV" bash "$INSTALL" --uninstall --purge >/dev/null 2>&1
    if [ -n "$PG_CLUSTER" ]; then
        cluster_psql -c "DROP DATABASE IF EXISTS tollgate WITH (FORCE)" -c "DROP ROLE IF EXISTS tollgate" >/dev/null 2>&1
        pg_ctlcluster --skip-systemctl-redirect "$PG_CLUSTER" main stop -m fast >/dev/null 2>&1
    fi
    cleanup
}
trap install_cleanup EXIT

netns_up
DB_OPT=()
if [ -n "$PG_CLUSTER" ]; then
    ip netns exec "$NS_SRV" pg_ctlcluster --skip-systemctl-redirect "$PG_CLUSTER" main start ||
        { fail "Debian's PostgreSQL cluster starts in the server namespace"; summary; exit 1; }
    DB_OPT=(--create-database)
fi
# install.sh NATs out of the server's default route, to the "internet".
internet_up

run_install() { ip netns exec "$NS_SRV" bash "$INSTALL" "$@"; }
# The admin CLI where the hooks run: a store on 127.0.0.1 is the namespace's.
tg() { ip netns exec "$NS_SRV" /usr/local/bin/tollgate "$@"; }

# Everything install.sh manages, with content, mode, owner and mtime; the
# firewall and forwarding of the server namespace; the database's records.
state() {
    local f
    for f in /usr/local/libexec/tollgate /usr/local/bin/tollgate /usr/local/bin/gen-ovpn /usr/local/share/doc/tollgate \
        /etc/tollgate /etc/openvpn/server/$NAME /etc/openvpn/server/$NAME.conf /etc/cron.d/tollgate-sweep \
        /etc/systemd/system/tollgate-sweep.service /etc/systemd/system/tollgate-sweep.timer \
        "/etc/systemd/system/tollgate-nat@.service" "/etc/systemd/system/openvpn-server@$NAME.service.d"; do
        [ -e "$f" ] && find "$f" -print0
    done | sort -z | xargs -0 stat -c '%n %a %U:%G %s %Y'
    find /var/lib/tollgate -maxdepth 0 -printf '%p %m %u:%g\n'
    ip netns exec "$NS_SRV" iptables -w -S
    ip netns exec "$NS_SRV" iptables -w -t nat -S
    ip netns exec "$NS_SRV" sysctl net.ipv4.ip_forward
    tg server list --json
    tg user list --json
    cat /run/openvpn-server/$NAME.pid 2>/dev/null
}
host_net() { sysctl net.ipv4.ip_forward; iptables -w -S; iptables -w -t nat -S; ip route; ip link; }

host_before=$(host_net 2>&1)
TEXTFILE=$W/textfile
run_install --setup-server --host "$SRV_IP" --name "$NAME" --server "$SERVER" --subnet 10.98.0.0/24 $START_OPT \
    --metrics-textfile "$TEXTFILE" "${DB_OPT[@]}" > "$W/install1.log" 2>&1
rc=$?
check "install.sh --setup-server runs" bash -c "[ $rc = 0 ] || { tail -n 20 '$W/install1.log'; exit 1; }"
[ $rc = 0 ] || { summary; exit 1; }
state1=$(state 2>&1)

run_install --setup-server --host "$SRV_IP" --name "$NAME" --server "$SERVER" --subnet 10.98.0.0/24 $START_OPT \
    --metrics-textfile "$TEXTFILE" "${DB_OPT[@]}" > "$W/install2.log" 2>&1
rc=$?
state2=$(state 2>&1)
t_second_run_changes_nothing() {
    [ $rc = 0 ] || { tail -n 20 "$W/install2.log"; return 1; }
    grep -q "nothing changed" "$W/install2.log" || { log "second run reported changes:"; sed 's/^/    | /' "$W/install2.log"; return 1; }
    [ "$state1" = "$state2" ] || { diff <(echo "$state1") <(echo "$state2") | sed 's/^/    | /'; return 1; }
}
check "a second run changes nothing (files, modes, mtimes, firewall, database)" t_second_run_changes_nothing

t_layout() {
    local p=/etc/openvpn/server/$NAME f
    for f in ca.key server.key tc.key; do
        [ "$(stat -c %a:%U "$p/$f")" = 600:root ] || { log "$p/$f is $(stat -c %a:%U "$p/$f")"; return 1; }
    done
    [ "$(stat -c %a:%U:%G /etc/tollgate/tollgate.toml)" = 640:root:nogroup ] || { log "tollgate.toml mode"; return 1; }
    if [ -n "$PG_CLUSTER" ]; then
        # The role's password only in a file root writes and the hooks read,
        # the URL naming it; the records in the cluster's database.
        [ "$(stat -c %a:%U:%G /etc/tollgate/pgpass)" = 640:root:nogroup ] || { log "pgpass mode"; return 1; }
        grep -qx "database = \"postgresql://tollgate@127.0.0.1:$PG_PORT/tollgate?passfile=/etc/tollgate/pgpass\"" \
            /etc/tollgate/tollgate.toml || { log "tollgate.toml: $(grep ^database /etc/tollgate/tollgate.toml)"; return 1; }
        [ "$(cluster_psql -d tollgate -c "SELECT name FROM servers")" = "$SERVER" ] || { log "no server record in PostgreSQL"; return 1; }
        [ ! -e /var/lib/tollgate/tollgate.db ] || { log "an SQLite file was made too"; return 1; }
    else
        [ "$(stat -c %U:%a /var/lib/tollgate/tollgate.db)" = nobody:660 ] || { log "db owner/mode"; return 1; }
    fi
    for f in auth-user-pass-verify client-connect client-disconnect; do
        grep -q "^$f \"/usr/local/libexec/tollgate/" "$p.conf" || { log "no $f hook in $p.conf"; return 1; }
    done
    grep -q "^management /run/openvpn-server/$NAME.sock unix" "$p.conf" || { log "no management socket"; return 1; }
    grep -q "^management = \"unix:/run/openvpn-server/$NAME.sock\"" /etc/tollgate/tollgate.toml ||
        { log "tollgate.toml lacks management"; return 1; }
    tg server show "$SERVER" --json | json 'd["host"] == "192.0.2.1" and d["port"] == 1194' | grep -q True ||
        { log "server record: $(tg server show "$SERVER" --json)"; return 1; }
}
check "PKI keys 0600, config 0640, the hooks and management socket in server.conf and tollgate.toml" t_layout

# Man pages and completions, installed where man, bash-completion, zsh and
# fish look by default.
t_docs() {
    local out
    # (Debian's /usr/local/man is a link to share/man.)
    [ "$(readlink -f "$(man -w tollgate)")" = /usr/local/share/man/man1/tollgate.1 ] ||
        { log "man -w tollgate: $(man -w tollgate 2>&1)"; return 1; }
    out=$(MANWIDTH=100 man tollgate-user-add 2>&1) && grep -q -- "--password-stdin" <<<"$out" ||
        { log "man tollgate-user-add: ${out:0:200}"; return 1; }
    out=$(MANWIDTH=100 man gen-ovpn 2>&1) && grep -q "client profile" <<<"$out" || { log "man gen-ovpn"; return 1; }
    out=$(bash -c '. /usr/local/share/bash-completion/completions/tollgate
        COMP_WORDS=(tollgate user add --pa); COMP_CWORD=3; COMP_LINE="tollgate user add --pa"; COMP_POINT=${#COMP_LINE}
        _tollgate tollgate --pa add; printf "%s\n" "${COMPREPLY[@]}"') && [ "$out" = --password-stdin ] ||
        { log "bash completes 'tollgate user add --pa' to: $out"; return 1; }
    zsh -n /usr/local/share/zsh/site-functions/_tollgate && grep -q "^#compdef tollgate" /usr/local/share/zsh/site-functions/_tollgate ||
        { log "zsh completion"; return 1; }
    fish --no-execute /etc/fish/completions/gen-ovpn.fish &&
        fish -c 'complete -C "tollgate us"' | grep -q "^user" || { log "fish completion"; return 1; }
}
check "man tollgate, man tollgate-user-add and man gen-ovpn render; bash, zsh and fish complete tollgate" t_docs

t_nat() {
    ip netns exec "$NS_SRV" iptables -w -t nat -S POSTROUTING | grep -q -- "-s 10.98.0.0/24 -o $VETH_P .*-j MASQUERADE" &&
        [ "$(ip netns exec "$NS_SRV" sysctl -n net.ipv4.ip_forward)" = 1 ] ||
        { ip netns exec "$NS_SRV" iptables -w -t nat -S | sed 's/^/    | /'; return 1; }
}
check "forwarding on and MASQUERADE out of the default route's interface (server namespace)" t_nat
check "the host's forwarding, firewall, routes and links are untouched" bash -c '[ "$1" = "$2" ]' _ \
    "$host_before" "$(host_net 2>&1)"

SRV_LOG=/var/log/openvpn/$NAME.log
if [ -n "$START_OPT" ]; then
    SRV_LOG=$W/srv.log
    : > "$SRV_LOG"
    ip netns exec "$NS_SRV" openvpn --cd /etc/openvpn/server --config "$NAME.conf" \
        --writepid "$W/srv.pid" --daemon --log "$SRV_LOG"
fi
check "the OpenVPN server runs from the server.conf install wrote" wait_for "$SRV_LOG" "Initialization Sequence Completed" 20

echo "$PW" | tg user add alice --password-stdin --server "$SERVER" >/dev/null
ip netns exec "$NS_SRV" /usr/local/bin/gen-ovpn alice "$SERVER" --out "$W/alice.ovpn" 2>/dev/null
printf 'alice\n%s\n' "$PW" > "$W/creds-alice"
printf 'alice\nnot the password\n' > "$W/creds-bad"
chmod 600 "$W/creds-alice" "$W/creds-bad"
profile_client() { # NAME CREDS
    : > "$W/cli-$1.log"
    ip netns exec "$NS_CLI" openvpn --cd "$W" --config "$W/alice.ovpn" --auth-user-pass "$2" \
        --writepid "$W/cli-$1.pid" --daemon --log "$W/cli-$1.log"
}

t_wrong_password() {
    profile_client bad "$W/creds-bad"
    wait_for "$W/cli-bad.log" "AUTH_FAILED|Initialization Sequence Completed" 30 && grep -q AUTH_FAILED "$W/cli-bad.log"
}
check "the installed hooks refuse a wrong password" t_wrong_password

t_connects() {
    profile_client i1 "$W/creds-alice"
    wait_for "$W/cli-i1.log" "AUTH_FAILED|Initialization Sequence Completed" 30 &&
        grep -q "Initialization Sequence Completed" "$W/cli-i1.log" || { tail -n 5 "$W/cli-i1.log"; return 1; }
    ip netns exec "$NS_CLI" ping -c 3 -i 0.3 -W 2 10.98.0.1 >/dev/null || { log "no ping to 10.98.0.1"; return 1; }
    # Through the tunnel (redirect-gateway), forwarded and NATed by the server.
    ip netns exec "$NS_CLI" ping -c 3 -i 0.3 -W 2 "$OUT_IP" >/dev/null || { log "no ping through NAT"; return 1; }
    [ "$(tg sessions --open --json | json 'len([s for s in d if s["user"] == "alice"])')" = 1 ] ||
        { log "sessions: $(tg sessions --json)"; return 1; }
    # sweep reaches OpenVPN by the management socket install configured.
    tg user disable alice >/dev/null && tg sweep >/dev/null || return 1
    wait_for "$W/cli-i1.log" "SIGTERM|SIGUSR1|AUTH_FAILED|Exiting" 15 || { log "sweep did not cut alice"; return 1; }
    tg user enable alice >/dev/null
}
check "a gen-ovpn profile logs in through the installed hooks; tunnel, NAT and sweep work" t_connects

t_doctor() {
    # It finds the server config install.sh wrote by itself.
    tg doctor > "$W/doctor.txt" || { sed 's/^/    | /' "$W/doctor.txt"; return 1; }
    grep -q "^ok     openvpn-config: /etc/openvpn/server/$NAME.conf reads" "$W/doctor.txt" &&
        grep -q '^0 problems' "$W/doctor.txt" || { sed 's/^/    | /' "$W/doctor.txt"; return 1; }
}
check "tollgate doctor is clean on what install.sh wrote" t_doctor

t_metrics_textfile() {
    local line
    line=$(sed -n 's/^\* \* \* \* \* root //p' /etc/cron.d/tollgate-sweep)
    [[ $line == *" metrics --write $TEXTFILE/tollgate.prom"* ]] || { log "cron line: $line"; return 1; }
    ip netns exec "$NS_SRV" bash -c "$line" || return 1
    promtool check metrics < "$TEXTFILE/tollgate.prom" > "$W/promtool.log" 2>&1 || { sed 's/^/    | /' "$W/promtool.log"; return 1; }
    grep -qx "tollgate_sweep_last_success{server=\"$SERVER\"} 1" "$TEXTFILE/tollgate.prom" ||
        { sed 's/^/    | /' "$TEXTFILE/tollgate.prom"; return 1; }
}
check "--metrics-textfile: each cron sweep writes metrics that promtool accepts" t_metrics_textfile

t_uninstall() {
    [ -n "$START_OPT" ] && stop_server
    run_install --uninstall > "$W/uninstall.log" 2>&1 || return 1
    [ ! -e /usr/local/bin/tollgate ] && [ ! -e /usr/local/libexec/tollgate ] || { log "binaries left"; return 1; }
    ! compgen -G "/usr/local/share/man/man1/tollgate*" >/dev/null && [ ! -e /usr/local/share/man/man1/gen-ovpn.1 ] &&
        [ ! -e /usr/local/share/bash-completion/completions/tollgate ] && [ ! -e /usr/local/share/zsh/site-functions/_gen-ovpn ] &&
        [ ! -e /etc/fish/completions/tollgate.fish ] || { log "man pages or completions left"; return 1; }
    if [ -n "$PG_CLUSTER" ]; then
        [ "$(cluster_psql -d tollgate -c "SELECT count(*) FROM users WHERE name = 'alice'")" = 1 ] ||
            { log "uninstall lost the PostgreSQL data"; return 1; }
    else
        [ -f /var/lib/tollgate/tollgate.db ] || { log "uninstall lost the database"; return 1; }
    fi
    [ -f /etc/tollgate/tollgate.toml ] &&
        [ -f "/etc/openvpn/server/$NAME.conf" ] && [ -f "/etc/openvpn/server/$NAME/ca.key" ] ||
        { log "uninstall without --purge lost data"; return 1; }
    ! pgrep -f "openvpn-server/$NAME.pid|$NAME.conf" >/dev/null || { log "OpenVPN still runs"; return 1; }
    ! ip netns exec "$NS_SRV" iptables -w -t nat -S | grep -q tollgate || { log "NAT rule left"; return 1; }
    run_install --uninstall --purge > "$W/purge.log" 2>&1 || return 1
    for f in /etc/tollgate /var/lib/tollgate "/etc/openvpn/server/$NAME.conf" "/etc/openvpn/server/$NAME" \
        /etc/cron.d/tollgate-sweep /usr/local/share/doc/tollgate /etc/systemd/system/tollgate-sweep.timer \
        "/etc/systemd/system/openvpn-server@$NAME.service.d" /run/openvpn-server/*"$NAME"* /var/log/openvpn/*"$NAME"*; do
        [ ! -e "$f" ] || { log "$f left after --purge"; return 1; }
    done
    [ ! -e "$TEXTFILE/tollgate.prom" ] || { log "the metrics file was left"; return 1; }
    # A shared store is never dropped by one server's purge.
    if [ -n "$PG_CLUSTER" ]; then
        grep -q "shared PostgreSQL database stays" "$W/purge.log" &&
            [ "$(cluster_psql -d tollgate -c "SELECT count(*) FROM users WHERE name = 'alice'")" = 1 ] ||
            { log "--purge touched the shared store"; return 1; }
    fi
}
check "--uninstall stops the server and keeps data; --purge removes it all" t_uninstall

summary
