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
for u in alice:unlimited bob:tiny carol:small dave:short erin:single frank:unlimited grace:unlimited hank:unlimited; do
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

# With defer = auto, client-connect is deferred (OpenVPN offers it) and
# client-disconnect spools its record for a worker: the session was opened
# and closed by workers. With defer = never, while OpenVPN waited.
t_deferral() {
    local opened closed
    opened=$(grep -c "client-connect: OPEN user=alice ip=[^ ]* (deferred)" "$SRV_LOG")
    closed=$(grep -c "client-disconnect: CLOSE user=alice in=[0-9]* out=[0-9]* (deferred)" "$SRV_LOG")
    if [ "${TOLLGATE_E2E_DEFER:-auto}" = auto ]; then [ "$opened" -ge 1 ] && [ "$closed" -ge 1 ]; else [ "$opened$closed" = 00 ]; fi ||
        { log "deferred OPEN lines: $opened, CLOSE lines: $closed"; grep -E "client-(dis)?connect: (OPEN|CLOSE)" "$SRV_LOG"; return 1; }
}
check "client-connect and client-disconnect did their database work in workers (defer = auto), else inline" t_deferral

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

# 8. The deferred client-connect worker killed mid-way, inside its write
#    transaction (a trigger keeps hank's session insert busy for seconds):
#    the client is refused promptly, no session is left open, and the
#    accounting of everyone else is untouched; hank's next login works.
usage_all() { tg usage --json | json '" ".join("%s=%s/%s" % (u["user"], u["total_bytes_in"], u["total_bytes_out"]) for u in d)'; }
t_killed_connect_worker() {
    local before pid="" i start rc=0
    before=$(usage_all)
    if [ "$STORE" = postgres ]; then
        db_sql "CREATE FUNCTION tg_e2e_slow() RETURNS trigger LANGUAGE plpgsql AS \$\$
                BEGIN
                  IF NEW.user_id = (SELECT id FROM users WHERE name = 'hank') THEN PERFORM pg_sleep(60); END IF;
                  RETURN NEW;
                END \$\$;
                CREATE TRIGGER tg_e2e_slow BEFORE INSERT ON sessions FOR EACH ROW EXECUTE FUNCTION tg_e2e_slow();" >/dev/null
    else
        db_sql "CREATE TRIGGER tg_e2e_slow BEFORE INSERT ON sessions
               WHEN NEW.user_id = (SELECT id FROM users WHERE name = 'hank')
             BEGIN
               SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000000) SELECT x FROM c);
             END;"
    fi || return 1
    client_conf hank "$PW" > "$W/client-h1.conf"
    connect h1 "$W/client-h1.conf"
    # This run's worker (its argv names this run's config).
    for ((i = 0; i < 300; i++)); do
        for p in $(pgrep -x tg-conn-work); do
            tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q "$W/tollgate.toml" && pid=$p
        done
        [ -n "$pid" ] && break
        sleep 0.1
    done
    [ -n "$pid" ] || { log "no client-connect worker for hank"; rc=1; }
    [ -n "$pid" ] && { start=$(date +%s%N); kill -9 "$pid"; }
    if [ $rc = 0 ]; then
        # OpenVPN reads the refusal at the client's next PUSH_REQUEST (about
        # a second); it sends AUTH_FAILED at the one after (its own pace).
        wait_for "$SRV_LOG" "hank/.*deferred --client-connect script returned CC_RET_FAILED" 5 ||
            { log "OpenVPN did not read a refusal"; grep "hank/" "$SRV_LOG" | tail -n 3; rc=1; }
        log "OpenVPN read the refusal $(( ($(date +%s%N) - start) / 1000000 )) ms after the kill"
        wait_for "$W/cli-h1.log" "AUTH_FAILED|Initialization Sequence Completed" 15 &&
            grep -q AUTH_FAILED "$W/cli-h1.log" || { log "hank was not refused"; rc=1; }
        grep -q "client-connect: REFUSE user=hank: internal error: worker killed by signal 9" "$SRV_LOG" ||
            { log "no REFUSE line"; grep "user=hank" "$SRV_LOG" | tail -n 3; rc=1; }
    fi
    disconnect h1
    if [ "$STORE" = postgres ]; then db_sql "DROP TRIGGER tg_e2e_slow ON sessions" >/dev/null; else db_sql "DROP TRIGGER tg_e2e_slow"; fi || return 1
    [ "$(tg sessions --user hank --open --json | json 'len(d)')" = 0 ] || { log "hank has an open session"; rc=1; }
    [ "$(usage_all)" = "$before" ] || { log "usage changed: $before -> $(usage_all)"; rc=1; }
    # hank logs in again and is charged for his traffic.
    up h2 hank "$PW" || { log "hank's second login failed"; return 1; }
    ip netns exec "$NS_CLI" ping -q -c 5 -i 0.05 -s 500 10.99.0.1 >/dev/null || rc=1
    disconnect h2
    wait_for "$SRV_LOG" "client-disconnect: CLOSE user=hank" 15 || rc=1
    local got; got=$(tg usage --user hank --json | json 'd[0]["total_bytes_in"]')
    [ "$got" -gt 2500 ] || { log "hank's usage after a normal login: $got bytes in"; rc=1; }
    return $rc
}
if [ "${TOLLGATE_E2E_DEFER:-auto}" = auto ]; then
    check "a client-connect worker killed mid-way: a prompt refusal, no open session, no accounting lost" t_killed_connect_worker
fi

check "sweep with nothing to do succeeds" bash -c "ip netns exec $NS_SRV '$W/bin/tollgate' --config '$W/tollgate.toml' sweep --management 127.0.0.1:7505 | grep -q '0 live client'"
check "usage table renders" bash -c "'$W/bin/tollgate' --config '$W/tollgate.toml' usage | grep -q '^alice .*unlimited'"

summary
