#!/usr/bin/env bash
# A client that reaches the server over IPv6. OpenVPN prints such a client's
# real address without a port; its traffic must still be accounted, the
# sweep must charge it and not take it for lost, and quota and connection
# limits must hold. The server is one dual-stack socket (udp6 on ::), as a
# server without `local` is; an IPv4 client on it is accounted as well.
. "$(dirname "$0")/lib.sh"

setup
ipv6_up
PW='correct horse battery'
tg plan add one --quota 150KB --period day --max-connections 1 >/dev/null
for u in alice bob carol; do echo "$PW" | tg user add $u --password-stdin --plan one --server nl-1 >/dev/null; done
SRV_PROTO=udp6 SRV_LOCAL=::
start_server "keepalive 2 10"
v6() { CLI_PROTO=udp6 CLI_REMOTE=$SRV_IP6 "$@"; }
open_json() { tg sessions --open --user "$1" --json; }

t_v6_accounted() {
    v6 up a1 alice "$PW" || return 1
    [ "$(open_json alice | json 'd[0]["real_ip"]')" = "$CLI_IP6" ] || { log "session: $(open_json alice)"; return 1; }
    ip netns exec "$NS_CLI" ping -q -c 30 -i 0.02 -s 1000 10.99.0.1 >/dev/null || { log "no traffic through the tunnel"; return 1; }
    # (Not piped into grep -q: an early exit would fail the pipe.)
    mgmt "status 3" > "$W/status3.txt"
    grep -q "	$CLI_IP6	" "$W/status3.txt" || { log "alice not in the live status over IPv6"; return 1; }
    # Past the grace period for new sessions, so a sweep that cannot match
    # the client would close its session as lost.
    sleep 6
    local out; out=$(sweep --json) || { log "sweep failed: $out"; return 1; }
    log "sweep: $(echo "$out" | json '{k: d[k] for k in ("live_clients", "charged_sessions", "charged_bytes", "lost_closed")}')"
    [ "$(echo "$out" | json 'd["lost_closed"]')" = 0 ] || return 1
    [ "$(echo "$out" | json 'd["charged_sessions"]')" = 1 ] || return 1
    [ "$(echo "$out" | json 'd["charged_bytes"]')" -gt 30000 ] || return 1
    [ "$(open_json alice | json 'len(d)')" = 1 ] || { log "alice's session was closed"; return 1; }
}
check "an IPv6 client's traffic is charged by the sweep, which keeps its session open" t_v6_accounted

t_v6_limits() {
    v6 up c1 carol "$PW" || return 1
    # The connection limit (1) holds for a second tunnel over IPv6 ...
    v6 login_refused c2 carol "$PW" "too many connections" || { log "a second IPv6 login was let in"; return 1; }
    # ... and the quota: past 150 KB the sweep cuts the client.
    ip netns exec "$NS_CLI" ping -q -c 80 -i 0.02 -s 1200 10.99.0.1 >/dev/null
    local out; out=$(sweep) || { log "sweep failed: $out"; return 1; }
    grep -q "killed carol: quota used up" <<<"$out" || { log "sweep: $(echo "$out" | tr '\n' ' ')"; return 1; }
    wait_for "$W/srv.log" "client-disconnect: CLOSE user=carol" 15 || { log "no client-disconnect closed carol's session"; return 1; }
    v6 login_refused c3 carol "$PW" "data quota"
}
check "over IPv6 the connection limit holds and the sweep cuts a client over quota" t_v6_limits

t_v4_on_dual_stack() {
    up b1 bob "$PW" || return 1
    ip netns exec "$NS_CLI" ping -q -c 20 -i 0.02 -s 500 10.99.0.1 >/dev/null || return 1
    sleep 6
    local out; out=$(sweep --json) || return 1
    [ "$(echo "$out" | json 'd["lost_closed"]')" = 0 ] && [ "$(echo "$out" | json 'd["charged_sessions"]')" -ge 1 ] &&
        [ "$(open_json bob | json 'd[0]["real_ip"]')" = "$CLI_IP" ]
}
check "an IPv4 client on the same dual-stack server is accounted under its IPv4 address" t_v4_on_dual_stack

summary
