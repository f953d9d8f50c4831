#!/usr/bin/env bash
# The radius auth method against a real FreeRADIUS (Debian's package, a
# throwaway config on loopback in the server's namespace) and the real
# OpenVPN server and client: provisioning, a reject, an Access-Challenge
# answered through the client, Class -> group, Framed-IP-Address -> the
# client's address, the post-auth program's view, signed answers, a
# second server, a server down.
. "$(dirname "$0")/lib.sh"

[ -x /usr/sbin/freeradius ] || { echo "freeradius is not installed (tests/run.sh installs it)"; exit 1; }
RADIUS_PORT=18120
DEAD_PORT=18129   # nothing listens there
setup
cp "$W/tollgate.toml" "$W/base.toml"
# use_radius SERVER...: the config's [radius] section.
use_radius() {
    local list
    list=$(printf '"%s", ' "$@")
    cp "$W/base.toml" "$W/tollgate.toml"
    cat >> "$W/tollgate.toml" <<CONF
[auth]
method = "radius"
provision_plan = "staffplan"
[radius]
servers = [${list%, }]
secret_file = "$W/radius.secret"
timeout = "2s"
retries = 1
[radius.groups]
"eng" = "eng"
CONF
}
use_radius "127.0.0.1:$RADIUS_PORT"

. "$(dirname "$0")/radiusd.sh"
RADIUSD_NETNS=$NS_SRV
RADIUSD_PIDFILE=$W/radiusd.pid   # where lib.sh's cleanup finds it
SECRET='shared secret 7'
# start_radius [sign|unsigned]: (re)write the config and start the server.
start_radius() {
    rm -rf "$W/radius"
    RADIUSD_SIGN=$([ "${1:-sign}" = sign ] && echo yes || echo no) radiusd_prepare "$W/radius" "$RADIUS_PORT" "$SECRET" &&
        radius_user "$W/radius" rita 'rita pass 123' &&
        radius_user "$W/radius" eric 'eric pass 456' 'Class := "eng"' 'Framed-IP-Address := 10.99.0.78' &&
        radius_challenge_user "$W/radius" carl 'carl pass 789' 246810 &&
        radiusd_start "$W/radius"
}
start_radius || { echo "freeradius did not start"; exit 1; }
# The secret: readable by the hooks' group only.
printf '%s\n' "$SECRET" > "$W/radius.secret"
chown root:nogroup "$W/radius.secret"
chmod 640 "$W/radius.secret"

tg plan add staffplan --quota 10GiB >/dev/null
tg group add eng --push 'route 10.8.8.0 255.255.255.0' >/dev/null
start_server

check "an unknown RADIUS user is provisioned on first login and connects" login_ok r1 rita 'rita pass 123'
check "the provisioned account records the radius method and the configured plan" provisioned_as rita radius staffplan
check "an Access-Reject is refused" login_refused r2 rita 'rita pass 124' 'invalid username or password'
check "the reject counts toward the lockout" bash -c "[ \"\$('$W/bin/tollgate' --config '$W/tollgate.toml' user show rita --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"failed_count\"])')\" = 1 ]"
check "an unknown name is refused" login_refused r3 nobody 'x pass 1' 'invalid username or password'

t_class_and_address() {
    up e1 eric 'eric pass 456' || return 1
    ip netns exec "$NS_CLI" ip route show 10.8.8.0/24 | grep -q . || { log "no route from group eng"; return 1; }
    client_has 10.99.0.78 || { log "address is not 10.99.0.78"; return 1; }
    [ "$(tg user show eric --json | json 'd["group"]')" = eng ]
}
check "Class eng puts the user in group eng (its route) and Framed-IP-Address is the client's address" \
    t_class_and_address
disconnect_all

# The Access-Challenge, answered through the client's management interface
# as a GUI would; the account is created only once the answer is accepted.
client_conf carl x "auth-retry interact" | sed 's/^auth-user-pass .*/auth-user-pass/' > "$W/carl.ovpn"
t_challenge() {
    interactive c1 "$W/carl.ovpn" dynamic carl 'carl pass 789' NOSECRET 246810 || { cat "$W/answer-c1.log"; return 1; }
    # The log already holds the challenge's AUTH_FAILED,CRV1: wait for the end.
    wait_for "$W/cli-c1.log" "Initialization Sequence Completed" 30 || return 1
    grep -q "$RADIUS_CHALLENGE_MESSAGE" "$W/answer-c1.log" "$W/cli-c1.log" ||
        { log "the client was not shown the server's message"; return 1; }
    [ "$(tg user show carl --json | json 'd["auth_method"]')" = radius ]
}
check "an Access-Challenge round trip completes through the real client" t_challenge
disconnect_all
t_challenge_wrong() {
    interactive c2 "$W/carl.ovpn" dynamic carl 'carl pass 789' NOSECRET 135790 || { cat "$W/answer-c2.log"; return 1; }
    wait_for "$W/cli-c2.log" "AUTH_FAILED,invalid username or password" 30
}
check "a wrong answer to the challenge is refused" t_challenge_wrong
disconnect c2

# The post-auth program sees the Access-Accept's attributes; saying nothing
# of the address, it leaves RADIUS's in place.
mkdir -p "$W/prog"
chmod 755 "$W/prog"
: > "$W/prog/inputs.log"
chown nobody:nogroup "$W/prog/inputs.log"
cat > "$W/prog/log-input" <<EOF
#!/bin/sh
cat >> "$W/prog/inputs.log"
echo >> "$W/prog/inputs.log"
echo '{"status": "SUCCEED"}'
EOF
chmod 755 "$W/prog/log-input"
use_radius "127.0.0.1:$RADIUS_PORT"
printf '[post_auth]\ncommand = ["%s"]\n' "$W/prog/log-input" >> "$W/tollgate.toml"
t_program_sees_reply() {
    up p1 eric 'eric pass 456' || return 1
    client_has 10.99.0.78 || { log "address is not 10.99.0.78"; tail -n 20 "$W/cli-p1.log"; return 1; }
    python3 -c "
import json
rows = [json.loads(l) for l in open('$W/prog/inputs.log') if l.strip()]
i = rows[-1]['info']
assert i['auth_method'] == 'radius', i
assert i['radius_reply']['Class'] == ['eng'] and i['radius_reply']['Framed-IP-Address'] == ['10.99.0.78'], i
assert 'ldap' not in i, i"
}
check "the post-auth program gets info.radius_reply, and RADIUS's address stays when it names none" \
    t_program_sees_reply
disconnect_all
use_radius "127.0.0.1:$RADIUS_PORT"

# test-auth where the hooks run: the server listens in their namespace.
tg_srv() { ip netns exec "$NS_SRV" "$W/bin/tollgate" --config "$W/tollgate.toml" "$@"; }
t_test_auth() {
    local out rc
    out=$(echo 'rita pass 123' | tg_srv test-auth rita --password-stdin) || return 1
    grep -q '^ACCEPT rita' <<<"$out" || { log "$out"; return 1; }
    out=$(echo 'carl pass 789' | tg_srv test-auth carl --password-stdin)
    rc=$?
    grep -q "$RADIUS_CHALLENGE_MESSAGE" <<<"$out" && [ $rc = 3 ] || { log "exit $rc: $out"; return 1; }
}
check "tollgate test-auth asks the RADIUS server and shows its challenge (exit 3)" t_test_auth

# The first server refuses (nothing listens): the second one answers.
use_radius "127.0.0.1:$DEAD_PORT" "127.0.0.1:$RADIUS_PORT"
check "a server that does not answer is skipped for the next one" login_ok f1 rita 'rita pass 123'
use_radius "127.0.0.1:$RADIUS_PORT"

# A server that does not sign its answers (Message-Authenticator) is not
# believed, whatever it says.
radiusd_stop
start_radius unsigned || { echo "freeradius did not restart"; exit 1; }
t_unsigned() {
    login_refused u1 rita 'rita pass 123' 'authentication service unavailable' || return 1
    grep -q "directory 127.0.0.1:$RADIUS_PORT unavailable: unsigned answer" "$W/srv.log" ||
        { log "no log line for the unsigned answer"; return 1; }
}
check "an answer without Message-Authenticator is refused as unavailable" t_unsigned
radiusd_stop
start_radius || { echo "freeradius did not restart"; exit 1; }

# The server hangs (stopped, its socket open): refused once every attempt
# timed out (2 tries of 2 s).
t_hang() {
    local t0=$SECONDS rc=0
    kill -STOP "$RADIUSD_PID"
    login_refused h1 rita 'rita pass 123' 'authentication service unavailable' || rc=1
    kill -CONT "$RADIUSD_PID"
    [ $rc = 0 ] && [ $((SECONDS - t0)) -le 15 ] || { log "rc $rc after $((SECONDS - t0)) s"; return 1; }
    grep -q "directory 127.0.0.1:$RADIUS_PORT unavailable: no answer within 2s" "$W/srv.log"
}
check "the server hangs: refused as unavailable within the timeout, named in the log" t_hang

# The server stops: a prompt refusal with the "unavailable" reason, no lockout.
radiusd_stop
t_down() {
    local t0=$SECONDS before
    before=$(tg user show rita --json | json 'd["failed_count"]')
    login_refused d1 rita 'rita pass 123' 'authentication service unavailable' || return 1
    [ $((SECONDS - t0)) -le 10 ] || { log "took $((SECONDS - t0)) s"; return 1; }
    grep -q "directory 127.0.0.1:$RADIUS_PORT unavailable: connection refused" "$W/srv.log" ||
        { log "no log line naming the server"; return 1; }
    [ "$(tg user show rita --json | json 'd["failed_count"]')" = "$before" ] ||
        { log "the outage counted as a failure"; return 1; }
}
check "the server down: refused promptly as unavailable, named in the log, no lockout count" t_down
start_radius || { echo "freeradius did not restart"; exit 1; }
check "the server back: the user connects again" login_ok b1 rita 'rita pass 123'

summary
