#!/usr/bin/env bash
# A fleet: two OpenVPN servers (nl-1, nl-2) in two namespaces, one
# PostgreSQL store shared by both, one client namespace that reaches
# either. Quotas, connection limits and usage hold across the servers;
# each server's sweep handles its own clients only; a PostgreSQL outage
# refuses logins and loses no accounting.
TOLLGATE_E2E_STORE=postgres
. "$(dirname "$0")/lib.sh"

setup
PW='fleet horse battery'
pw() { echo "$PW"; }

# Server nl-2: its own namespace (203.0.113.0/24, TEST-NET-3, reached from
# the client namespace), tunnel pool and config, the same database.
NS_SRV2=tgs2$RUN_ID
VETH_S2=tgws$RUN_ID
VETH_C2=tgwc$RUN_ID
SRV2_IP=203.0.113.1
EXTRA_NS+=("$NS_SRV2")
ip netns add "$NS_SRV2"
ip link add "$VETH_S2" type veth peer name "$VETH_C2"
ip link set "$VETH_S2" netns "$NS_SRV2"
ip link set "$VETH_C2" netns "$NS_CLI"
ip -n "$NS_SRV2" addr add "$SRV2_IP/24" dev "$VETH_S2"
ip -n "$NS_CLI" addr add 203.0.113.2/24 dev "$VETH_C2"
ip -n "$NS_SRV2" link set "$VETH_S2" up
ip -n "$NS_CLI" link set "$VETH_C2" up
ip -n "$NS_SRV2" link set lo up
# (Its own spool, as on a machine of its own.)
sed -e 's/^server = "nl-1"/server = "nl-2"/' -e 's|/db/spool"|/db/spool-b"|' "$W/tollgate.toml" > "$W/tollgate-b.toml"
chmod 644 "$W/tollgate-b.toml"
tg server add nl-2 --host "$SRV2_IP" --ca "$W/pki/ca.crt" --tls-crypt "$W/pki/tc.key" >/dev/null

tg plan add unlimited >/dev/null
tg plan add tiny --quota 2KB >/dev/null
tg plan add small --quota 60KB --period day >/dev/null
tg plan add single --max-connections 1 >/dev/null
for u in quinn:tiny sam:single uma:unlimited vic:small wes:small xia:unlimited yan:unlimited zed:unlimited; do
    pw | tg user add "${u%%:*}" --password-stdin --plan "${u#*:}" --server nl-1 --server nl-2 >/dev/null
done

start_server "keepalive 2 10"
SRV_LOG=$W/srv.log
SRV2_LOG=$W/srv-b.log

# start_server_b: nl-2, from nl-1's configuration.
start_server_b() {
    sed -e "s|^local .*|local $SRV2_IP|" -e 's|^server 10.99.0.0 |server 10.98.0.0 |' \
        -e "s|$W/tollgate.toml|$W/tollgate-b.toml|g" -e "s|^status .*|status $W/status-b.log 1|" \
        "$W/server.conf" > "$W/server-b.conf"
    : > "$SRV2_LOG"
    ip netns exec "$NS_SRV2" openvpn --cd "$W" --config "$W/server-b.conf" \
        --writepid "$W/srv-b.pid" --daemon --log "$SRV2_LOG"
    wait_for "$SRV2_LOG" "Initialization Sequence Completed" 20 || { echo "nl-2 did not start:"; tail -n 30 "$SRV2_LOG"; exit 1; }
}
start_server_b

# on_b NAME USER: a client of nl-2 (the profile points at its address).
conf_b() { CLI_REMOTE=$SRV2_IP client_conf "$1" "$PW"; }
up_b() {
    conf_b "$2" > "$W/client-$1.conf"
    connect "$1" "$W/client-$1.conf"
    connected "$1"
}
refused_b() {
    conf_b "$2" > "$W/client-$1.conf"
    connect "$1" "$W/client-$1.conf"
    refused "$1" "$3"; local rc=$?
    disconnect "$1"
    return $rc
}
sweep_a() { ip netns exec "$NS_SRV" "$W/bin/tollgate" --config "$W/tollgate.toml" sweep --management 127.0.0.1:7505 "$@"; }
sweep_b() { ip netns exec "$NS_SRV2" "$W/bin/tollgate" --config "$W/tollgate-b.toml" sweep --management 127.0.0.1:7505 "$@"; }
traffic() { ip netns exec "$NS_CLI" ping -q -c "$2" -i 0.02 -s 1000 "$1" >/dev/null; }
usage_of() { tg usage --user "$1" --json | json "str(d[0][\"total_bytes_in\"]) + ' ' + str(d[0][\"total_bytes_out\"])"; }
open_on() { tg sessions --user "$1" --open --json | json "' '.join(sorted(s['server'] or '-' for s in d))"; }

t_quota_across() {
    up q1 quinn "$PW" || return 1
    traffic 10.99.0.1 5
    mgmt "kill quinn" >/dev/null
    wait_for "$SRV_LOG" "client-disconnect: CLOSE user=quinn" 15 || { log "no CLOSE on nl-1"; return 1; }
    disconnect q1
    refused_b q2 quinn "data quota of 2 KB this month used up"
}
check "a quota used up through nl-1 refuses the next login on nl-2, saying why" t_quota_across

t_single_across() {
    up s1 sam "$PW" || return 1
    [ "$(open_on sam)" = nl-1 ] || { log "sam's open sessions: $(open_on sam)"; return 1; }
    refused_b s2 sam "too many connections"; local rc=$?
    disconnect s1
    return $rc
}
check "a user with one connection allowed, connected to nl-1, is refused on nl-2" t_single_across

# Two users log in on both servers at the same moment: the limit of one
# holds (one login wins, whichever).
t_single_race() {
    local i won
    pw | tg user add sol --password-stdin --plan single --server nl-1 --server nl-2 >/dev/null
    client_conf sol "$PW" > "$W/client-r1.conf"
    conf_b sol > "$W/client-r2.conf"
    connect r1 "$W/client-r1.conf"; connect r2 "$W/client-r2.conf"
    for i in r1 r2; do wait_for "$W/cli-$i.log" "AUTH_FAILED|Initialization Sequence Completed" 30; done
    won=$(grep -l "Initialization Sequence Completed" "$W/cli-r1.log" "$W/cli-r2.log" | wc -l)
    log "logins that got through: $won; open sessions: $(open_on sol)"
    disconnect r1; disconnect r2
    [ "$won" = 1 ]
}
check "two logins at once on two servers for a one-connection user: exactly one gets through" t_single_race

t_usage_adds_up() {
    local rc=0 sum
    up u1 uma "$PW" || return 1
    traffic 10.99.0.1 30
    disconnect u1
    wait_for "$SRV_LOG" "client-disconnect: CLOSE user=uma" 15 || rc=1
    up_b u2 uma || return 1
    traffic 10.98.0.1 30
    disconnect u2
    wait_for "$SRV2_LOG" "client-disconnect: CLOSE user=uma" 15 || rc=1
    sum=$(tg sessions --user uma --json | json "str(sum(s['bytes_in'] for s in d)) + ' ' + str(sum(s['bytes_out'] for s in d)) + ' ' + ','.join(sorted(s['server'] for s in d))")
    log "sessions: $sum; usage: $(usage_of uma)"
    [ "${sum##* }" = nl-1,nl-2 ] || { log "want one session on each server"; rc=1; }
    [ "${sum% *}" = "$(usage_of uma)" ] || { log "usage is not the sum of both servers' sessions"; rc=1; }
    [ "${sum%% *}" -gt 50000 ] || { log "too little traffic counted"; rc=1; }
    return $rc
}
check "traffic through both servers adds up exactly in tollgate usage" t_usage_adds_up

t_sweeps_own() {
    local rc=0 out
    up v1 vic "$PW" || return 1
    up_b w1 wes || return 1
    traffic 10.99.0.1 100; traffic 10.98.0.1 100
    out=$(sweep_a) || { log "nl-1's sweep failed: $out"; return 1; }
    log "nl-1 sweep: $(echo "$out" | tr '\n' ' ')"
    grep -q "killed vic: quota used up" <<<"$out" || rc=1
    grep -q "wes" <<<"$out" && { log "nl-1's sweep touched wes"; rc=1; }
    [ "$(usage_of wes)" = "0 0" ] || { log "nl-1's sweep charged wes: $(usage_of wes)"; rc=1; }
    [ "$(open_on wes)" = nl-2 ] || { log "wes's sessions: $(open_on wes)"; rc=1; }
    out=$(sweep_b) || { log "nl-2's sweep failed: $out"; return 1; }
    log "nl-2 sweep: $(echo "$out" | tr '\n' ' ')"
    grep -q "killed wes: quota used up" <<<"$out" || rc=1
    grep -q "vic" <<<"$out" && { log "nl-2's sweep touched vic"; rc=1; }
    disconnect v1; disconnect w1
    return $rc
}
check "each server's sweep charges and cuts its own clients only" t_sweeps_own

t_killed_server() {
    local rc=0 out
    up x1 xia "$PW" || return 1
    up_b y1 yan || return 1
    kill -9 "$(cat "$W/srv.pid")"; rm -f "$W/srv.pid"
    disconnect x1
    start_server "keepalive 2 10"
    sleep 6   # older than sweep's grace for sessions that just opened
    out=$(sweep_a) || { log "sweep failed: $out"; return 1; }
    log "nl-1 sweep: $(echo "$out" | tr '\n' ' ')"
    grep -Eq "closed [1-9][0-9]* lost session" <<<"$out" || rc=1
    [ "$(tg sessions --user xia --json | json 'd[0]["close_reason"]')" = lost ] || { log "xia's session not closed as lost"; rc=1; }
    [ "$(open_on yan)" = nl-2 ] || { log "yan's session on nl-2: $(open_on yan)"; rc=1; }
    grep -q "Initialization Sequence Completed" "$W/cli-y1.log" && ! grep -q "SIGTERM\|SIGUSR1" "$W/cli-y1.log" ||
        { log "yan's tunnel to nl-2 was disturbed"; rc=1; }
    disconnect y1
    return $rc
}
check "nl-1 SIGKILLed: its sweep after restart closes its lost session, nl-2's stays open" t_killed_server

t_outage() {
    local rc=0 rec out want got
    up z1 zed "$PW" || return 1
    traffic 10.99.0.1 20
    bash "$ROOT/tests/pg-server.sh" halt "$W/pg" || return 1
    refused_b z2 zed "service unavailable, try again later" || rc=1
    grep -q "auth-verify: DENY user=zed .*database unavailable" "$SRV2_LOG" || { log "no log line says why"; rc=1; }
    mgmt "kill zed" >/dev/null
    disconnect z1
    wait_for "$SRV_LOG" "client-disconnect: .*SPOOLED user=zed" 20 || { log "the disconnect was not spooled"; rc=1; }
    for rec in "$W"/db/spool/*.json; do
        [ -f "$rec" ] && log "spooled: $(cat "$rec")"
        [ -f "$rec" ] && [ "$(json 'd["key"]["username"]' < "$rec")" = zed ] &&
            want=$(json 'str(d["bytes_in"]) + " " + str(d["bytes_out"])' < "$rec")
    done
    [ -n "${want:-}" ] || { log "no record of zed in the spool"; bash "$ROOT/tests/pg-server.sh" resume "$W/pg"; return 1; }
    bash "$ROOT/tests/pg-server.sh" resume "$W/pg" || return 1
    out=$(sweep_a) || { log "sweep failed: $out"; return 1; }
    log "after the outage, nl-1 sweep: $(echo "$out" | tr '\n' ' ')"
    got=$(tg sessions --user zed --json | json 'str(d[0]["bytes_in"]) + " " + str(d[0]["bytes_out"]) + " " + str(d[0]["open"])')
    [ "$got" = "$want False" ] || { log "zed's session: $got, the spooled record: $want"; rc=1; }
    [ "$(usage_of zed)" = "$want" ] || { log "zed's usage $(usage_of zed), want $want"; rc=1; }
    [ -z "$(ls "$W"/db/spool/*.json 2>/dev/null)" ] || { log "records left in the spool"; rc=1; }
    up_b z3 zed || { log "zed cannot log in once PostgreSQL is back"; rc=1; }
    disconnect z3
    return $rc
}
check "PostgreSQL stopped: logins refused with the reason, the disconnect spooled, replayed exactly after" t_outage

summary
