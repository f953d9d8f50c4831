#!/usr/bin/env bash
# Sessions, accounting, quotas and time limits against a real OpenVPN server.
. "$(dirname "$0")/lib.sh"

setup
PW='correct horse battery'
pw() { echo "$PW"; }
tg plan add unlimited >/dev/null
tg plan add tiny --quota 2KB >/dev/null
tg plan add small --quota 60KB --period day >/dev/null
tg plan add short --max-session 12s >/dev/null
tg plan add single --max-connections 1 >/dev/null
for u in alice:unlimited bob:tiny carol:small dave:short erin:single frank:unlimited grace:unlimited; do
    pw | tg user add "${u%%:*}" --password-stdin --plan "${u#*:}" --server nl-1 >/dev/null
done
tg user set frank --static-ip 10.99.0.50 >/dev/null
start_server "duplicate-cn
keepalive 2 10"
SRV_LOG=$W/srv.log

# 1. Accounting: traffic, a management kill, exactly one closed session
#    charged with at least what the live status showed.
t_accounting() {
    up a1 alice "$PW" || return 1
    ip netns exec "$NS_CLI" ping -q -c 20 -i 0.05 -s 500 10.99.0.1 >/dev/null || { log "no traffic through the tunnel"; return 1; }
    local live; live=$(live_bytes alice)
    [ -n "$live" ] || { log "alice not in the live status"; return 1; }
    mgmt "kill alice" >/dev/null
    wait_for "$SRV_LOG" "client-disconnect: CLOSE user=alice" 15 || { log "no client-disconnect"; return 1; }
    disconnect a1
    local n; n=$(tg sessions --user alice --json | json 'len([s for s in d if not s["open"]])')
    local open; open=$(tg sessions --user alice --open --json | json 'len(d)')
    [ "$n" = 1 ] && [ "$open" = 0 ] || { log "closed=$n open=$open, want 1 and 0"; return 1; }
    local got; got=$(tg usage --user alice --json | json 'str(d[0]["total_bytes_in"]) + " " + str(d[0]["total_bytes_out"])')
    log "live before kill: $live; usage after: $got"
    [ "${got% *}" -ge "${live% *}" ] && [ "${got#* }" -ge "${live#* }" ] && [ "${got% *}" -gt 10000 ]
}
check "traffic is accounted: one closed session, usage >= live byte counts" t_accounting

# client-connect is deferred where OpenVPN offers it (defer = auto): the
# session was opened by its worker; with defer = never, while OpenVPN waited.
t_connect_deferral() {
    local deferred; deferred=$(grep -c "client-connect: OPEN user=alice ip=[^ ]* (deferred)" "$SRV_LOG")
    if [ "${TOLLGATE_E2E_DEFER:-auto}" = auto ]; then [ "$deferred" -ge 1 ]; else [ "$deferred" = 0 ]; fi ||
        { log "deferred OPEN lines: $deferred"; grep "client-connect: OPEN" "$SRV_LOG"; return 1; }
}
check "client-connect answered from its deferred worker (defer = auto), else inline" t_connect_deferral

# 2. Quota used up: refused at the next login with a reason naming the quota.
t_quota_login() {
    up b1 bob "$PW" || return 1
    ip netns exec "$NS_CLI" ping -q -c 5 -i 0.05 -s 500 10.99.0.1 >/dev/null
    mgmt "kill bob" >/dev/null
    wait_for "$SRV_LOG" "client-disconnect: CLOSE user=bob" 15 || return 1
    disconnect b1
    login_refused b2 bob "$PW" "data quota of 2 KB this month used up"
}
check "a user whose quota is used up is refused, and told why" t_quota_login

# 3. Over quota while connected: one sweep cuts the client.
t_quota_sweep() {
    up c1 carol "$PW" || return 1
    ip netns exec "$NS_CLI" ping -q -c 100 -i 0.02 -s 1000 10.99.0.1 >/dev/null || { log "no traffic through the tunnel"; return 1; }
    local out; out=$(sweep) || { log "sweep failed: $out"; return 1; }
    log "sweep: $(echo "$out" | tr '\n' ' ')"
    grep -q "killed carol: quota used up" <<<"$out" || return 1
    ! grep -q "UNDEF" <<<"$out" || { log "a client still in its handshake was taken for a user"; return 1; }
    wait_for "$SRV_LOG" "client-disconnect: CLOSE user=carol" 15 || { log "carol's session not closed"; return 1; }
    [ -z "$(live_bytes carol)" ] || { log "carol still connected"; return 1; }
    disconnect c1
    login_refused c2 carol "$PW" "data quota"
}
check "a connected user who goes over quota is cut by one sweep" t_quota_sweep

# 4. Max session 12 s: OpenVPN ends the session by itself.
t_session_timeout() {
    up d1 dave "$PW" || return 1
    grep -q "tollgate client-connect: OPEN user=dave .*session-timeout 12" "$SRV_LOG" || { log "no session-timeout directive"; return 1; }
    wait_for "$SRV_LOG" "client-disconnect: CLOSE user=dave" 30 || { log "session was not ended"; return 1; }
    disconnect d1
    local dur; dur=$(tg sessions --user dave --json | json '[s["duration_secs"] for s in d if not s["open"]][-1]')
    log "session lasted ${dur}s"
    [ "$dur" -ge 11 ] && [ "$dur" -le 25 ]
}
check "a plan with max session 12s: the server ends the session itself" t_session_timeout

# 5. One connection allowed: a second simultaneous login is refused.
t_single() {
    up e1 erin "$PW" || return 1
    login_refused e2 erin "$PW" "too many connections"
    local rc=$?
    disconnect e1
    return $rc
}
check "a plan with one connection refuses a second simultaneous login" t_single

# 6. Static IP.
t_static() {
    up f1 frank "$PW" || return 1
    local rc=0
    client_has 10.99.0.50 || rc=1
    # The session shows the address given, not the one the pool offered.
    [ "$(tg sessions --user frank --open --json | json 'd[0]["vpn_ip"]')" = 10.99.0.50 ] ||
        { log "sessions shows $(tg sessions --user frank --open --json | json 'd[0]["vpn_ip"]')"; rc=1; }
    disconnect f1
    return $rc
}
check "a static IP set on a user is the address the client gets, and the one sessions shows" t_static

# 7. Server SIGKILLed with a client connected: one sweep closes the lost session.
t_lost() {
    up g1 grace "$PW" || return 1
    kill -9 "$(cat "$W/srv.pid")"; rm -f "$W/srv.pid"
    disconnect g1
    [ "$(tg sessions --user grace --open --json | json 'len(d)')" = 1 ] || { log "expected one open session"; return 1; }
    start_server "duplicate-cn
keepalive 2 10"
    sleep 6   # older than sweep's grace for sessions that just opened
    local out; out=$(sweep) || return 1
    log "sweep: $(echo "$out" | tr '\n' ' ')"
    # Every session open at the crash is lost (grace's, and any other).
    grep -Eq "closed [1-9][0-9]* lost session" <<<"$out" || return 1
    [ "$(tg sessions --user grace --open --json | json 'len(d)')" = 0 ] &&
        [ "$(tg sessions --user grace --json | json 'd[0]["close_reason"]')" = lost ]
}
check "after a server crash and restart, one sweep closes the lost session" t_lost

check "sweep with nothing to do succeeds" bash -c "ip netns exec $NS_SRV '$W/bin/tollgate' --config '$W/tollgate.toml' sweep --management 127.0.0.1:7505 | grep -q '0 live client'"
check "usage table renders" bash -c "'$W/bin/tollgate' --config '$W/tollgate.toml' usage | grep -q '^alice .*unlimited'"

summary
