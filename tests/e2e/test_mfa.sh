#!/usr/bin/env bash
# TOTP second factor through static and dynamic challenge, and reauth on
# renegotiation without a new code, against a real OpenVPN server and client.
. "$(dirname "$0")/lib.sh"

setup
PW='correct horse battery'
for u in alice bob carol; do echo "$PW" | tg user add $u --password-stdin --server nl-1 >/dev/null; done
secret_of() { tg mfa enroll "$1" --no-confirm | sed -n 's/^otpauth:.*secret=\([A-Z2-7]*\).*/\1/p'; }
ALICE=$(secret_of alice); BOB=$(secret_of bob); CAROL=$(secret_of carol)
[ -n "$ALICE" ] && [ -n "$BOB" ] && [ -n "$CAROL" ] || { echo "enrolment printed no secret"; exit 1; }
# reneg-sec 20 with keepalive: at shorter intervals OpenVPN 2.6 may not
# deliver the renewed session token before the next renegotiation, which
# then presents an Expired token (refused, as it must be).
start_server "auth-gen-token 0 external-auth
reneg-sec 20
hand-window 5
keepalive 2 10"
gen() { "$W/bin/gen-ovpn" --config "$W/tollgate.toml" "$@"; }

check "tollgate user show says the second factor is on" bash -c "'$W/bin/tollgate' --config '$W/tollgate.toml' user show alice | grep -q 'second factor: *totp'"
gen alice nl-1 > "$W/alice.ovpn"
check "gen-ovpn adds static-challenge for a user with a second factor" grep -q '^static-challenge "' "$W/alice.ovpn"

# One code, fixed before the first login: computing it afterwards could
# fall on the next 30-second step and yield a code never used.
CODE_USED=$(python3 -c "
import base64,hashlib,hmac,struct,time
k=base64.b32decode('$ALICE'+'='*(-len('$ALICE')%8)); s=int(time.time())//30
h=hmac.new(k,struct.pack('>Q',s),hashlib.sha1).digest(); o=h[19]&15
print('%06d'%((struct.unpack('>I',h[o:o+4])[0]&0x7fffffff)%1000000))")
t_static_ok() {
    interactive s1 "$W/alice.ovpn" static alice "$PW" "$ALICE" "$CODE_USED" || return 1
    connected s1
}
check "static challenge with the right code connects" t_static_ok
disconnect_all

t_replay() {
    interactive s2 "$W/alice.ovpn" static alice "$PW" "$ALICE" "$CODE_USED" || return 1
    refused s2 "invalid username or password"
}
check "the same code replayed at once is refused" t_replay

t_wrong_code() {
    local wrong; wrong=$(printf '%06d' $(( (10#$CODE_USED + 1) % 1000000 )))
    interactive s3 "$W/alice.ovpn" static alice "$PW" "$ALICE" "$wrong" || return 1
    refused s3 "invalid username or password"
}
check "a wrong code is refused (and looks like a wrong password)" t_wrong_code
check "wrong codes count toward the lockout" bash -c "[ \"\$('$W/bin/tollgate' --config '$W/tollgate.toml' user show alice --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"failed_count\"])')\" -ge 2 ]"

# Dynamic challenge: the profile without static-challenge, with auth-retry interact.
gen bob nl-1 | grep -v '^static-challenge' > "$W/bob.ovpn"
echo "auth-retry interact" >> "$W/bob.ovpn"
t_dynamic() {
    interactive d1 "$W/bob.ovpn" dynamic bob "$PW" "$BOB" 0 || { cat "$W/answer-d1.log"; return 1; }
    # The log already holds the challenge's AUTH_FAILED,CRV1: wait for the end.
    wait_for "$W/cli-d1.log" "Initialization Sequence Completed" 30 || return 1
    grep -q "tollgate auth-verify: CHALLENGE user=bob" "$W/srv.log"
}
check "the dynamic challenge round trip (CRV1) connects" t_dynamic
disconnect_all

# Reauth: auth-gen-token 0 external-auth, reneg-sec 20.
t_reauth() {
    gen carol nl-1 > "$W/carol.ovpn"
    interactive r1 "$W/carol.ovpn" static carol "$PW" "$CAROL" 0 || return 1
    connected r1 || return 1
    # Two renegotiations later the tunnel is still up, without a new code.
    local i n=0
    for ((i = 0; i < 600 && n < 2; i++)); do
        n=$(tg events --user carol --json | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["result"]=="accept" and "session token" in e["reason"]))')
        sleep 0.1
    done
    [ "$n" -ge 2 ] || { log "only $n token reauths seen"; return 1; }
    ! grep -q "AUTH_FAILED\|SIGUSR1" "$W/cli-r1.log" || { log "the client restarted"; return 1; }
    # Up means packets still flow: a key switch may swallow one or two.
    ip netns exec "$NS_CLI" ping -q -c 10 -i 0.2 -W 2 10.99.0.1 >/dev/null || { log "tunnel down"; return 1; }
    # Disabling the user cuts the tunnel at the next renegotiation.
    tg user disable carol >/dev/null
    wait_for "$W/srv.log" "tollgate auth-verify: DENY user=carol .*account disabled" 45 || { log "no deny at renegotiation"; return 1; }
    wait_for "$W/srv.log" "client-disconnect: CLOSE user=carol" 30 || { log "tunnel not cut"; return 1; }
}
check "reauth on renegotiation needs no new code, and a disabled user is cut at the next one" t_reauth

summary
