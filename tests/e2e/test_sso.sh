#!/usr/bin/env bash
# Single sign-on (auth method oidc) against a real OpenID provider (panva's
# oidc-provider from npm, on loopback in the server's namespace), tollgate
# web serving the login link and callback there, a scripted browser with a
# cookie jar, and the real OpenVPN 2.6 server and client (IV_SSO webauth,
# the WEB_AUTH link read from its management interface): sign-in and
# traffic, provisioning and group mapping, the login page's details, a user
# outside the required group, used and expired links and states, a client
# without web auth (and the password fallback), a client that sends no
# username (whoever signs in is the account), renegotiations by session
# token and a disable cutting the tunnel, the sweep's recheck at the
# provider cutting a user removed from the required group, the provider
# down or answering garbage.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/oidcd.sh"

OIDC_PORT=9481
WEB_PORT=9480
WEB=http://127.0.0.1:$WEB_PORT
CLIENT_SECRET='s3cret-of the client'
setup
oidcd_install || exit 1
cp "$W/tollgate.toml" "$W/base.toml"
# use_oidc [EXTRA_OIDC_KEYS]: the config's [auth] and [oidc] sections.
use_oidc() {
    cp "$W/base.toml" "$W/tollgate.toml"
    cat >> "$W/tollgate.toml" <<CONF
[auth]
method = "${AUTH_DEFAULT:-oidc}"
provision_plan = "ssoplan"
[oidc]
issuer = "http://127.0.0.1:$OIDC_PORT"
client_id = "openvpn"
client_secret_file = "$W/oidc.secret"
redirect_url = "$WEB/oidc/callback"
required_groups = ["vpn"]
scopes = "openid profile groups"
login_timeout = "${LOGIN_TIMEOUT:-40s}"
${1:-}
[oidc.groups]
"eng" = "eng"
CONF
}
use_oidc
printf '%s\n' "$CLIENT_SECRET" > "$W/oidc.secret"
chown root:nogroup "$W/oidc.secret"
chmod 640 "$W/oidc.secret"

tg plan add ssoplan --quota 10GiB >/dev/null
tg group add eng --push 'route 10.8.8.0 255.255.255.0' >/dev/null

# The provider, in the server's namespace; its users and groups.
OIDCD_NETNS=$NS_SRV
OIDCD_PIDFILE=$W/oidcd.pid
oidcd_prepare "$W/oidc" "$OIDC_PORT" openvpn "$CLIENT_SECRET" "$WEB/oidc/callback" || exit 1
oidc_user "$W/oidc" alice 'alice pw 1' vpn eng
oidc_user "$W/oidc" bob 'bob pw 2' staff
oidc_user "$W/oidc" dave 'dave pw 3' vpn
oidc_user "$W/oidc" erin 'erin pw 4' vpn
oidcd_start "$W/oidc" || { echo "the OpenID provider did not start"; cat "$W/oidc/oidc.log"; exit 1; }

# tollgate web, as the hooks' user, in the server's namespace.
start_web() {
    ip netns exec "$NS_SRV" setpriv --reuid nobody --regid nogroup --clear-groups \
        "$W/bin/tollgate" --config "$W/tollgate.toml" web --listen "127.0.0.1:$WEB_PORT" >> "$W/web.log" 2>&1 &
    echo $! > "$W/web.pid"
    local i
    for ((i = 0; i < 50; i++)); do
        ip netns exec "$NS_SRV" curl -fsS "$WEB/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "tollgate web did not start:"; cat "$W/web.log"; return 1
}
stop_web() { kill "$(cat "$W/web.pid")" 2>/dev/null; wait "$(cat "$W/web.pid")" 2>/dev/null; rm -f "$W/web.pid"; }

# browse URL USER PASS [NAME]: the scripted browser, in the server's
# namespace (where the provider and tollgate web listen); its output in
# $W/browser-NAME.out (stdout) and .log (each request).
browse() {
    local n=${4:-b}
    ip netns exec "$NS_SRV" python3 "$ROOT/tests/e2e/sso_browser.py" "$1" "$2" "$3" \
        > "$W/browser-$n.out" 2> "$W/browser-$n.log"
}

# sso_start NAME USER [EXTRA]: a client whose profile announces web auth
# (setenv IV_SSO webauth), with a management interface; prints the
# WEB_AUTH link it is sent (empty if none comes within 20 s).
sso_start() {
    client_conf "$2" "sso-ignored" "setenv IV_SSO webauth
${3:-}" > "$W/client-$1.conf"
    sso_launch "$1" "$W/client-$1.conf"
}

# sso_launch NAME CONFIG [OPTION...]: sso_start's client, from CONFIG.
sso_launch() {
    local name=$1
    : > "$W/cli-$name.log"
    ip netns exec "$NS_CLI" openvpn --cd "$W" --config "$2" "${@:3}" \
        --management 127.0.0.1 7506 --management-hold \
        --writepid "$W/cli-$name.pid" --daemon --log "$W/cli-$name.log"
    ip netns exec "$NS_CLI" python3 - <<'PY'
import socket, sys, time
deadline = time.time() + 20
s = None
while s is None and time.time() < deadline:
    try:
        s = socket.create_connection(("127.0.0.1", 7506), timeout=5)
    except OSError:
        time.sleep(0.1)
if s is None:
    sys.exit(1)
f = s.makefile("rw", newline="\n")
f.write("hold release\n"); f.flush()
while time.time() < deadline:
    line = f.readline()
    if not line:
        break
    if line.startswith(">INFOMSG:WEB_AUTH::"):
        print(line.strip()[len(">INFOMSG:WEB_AUTH::"):])
        break
PY
}

if [ "${TOLLGATE_E2E_DEFER:-auto}" = never ]; then
    # Single sign-on answers through auth_control_file: with deferral off
    # the login is refused, with the reason in OpenVPN's log.
    start_web || exit 1
    start_server
    t_needs_defer() {
        sso_start n1 alice >/dev/null
        refused n1 "server error" || return 1
        grep -q "single sign-on needs deferred auth" "$W/srv.log" || { log "no reason in the server log"; return 1; }
    }
    check "with defer = never an SSO login is refused, the server log says why" t_needs_defer
    disconnect n1
    summary
    exit
fi

start_web || exit 1
# Short renegotiations for the session-token checks. OpenVPN caps a pending
# login at max(hand-window, reneg-sec/2): 10 s here, plenty for the
# scripted browser; the checks after these run with OpenVPN's defaults.
start_server "auth-gen-token 0 external-auth
auth-user-pass-optional
reneg-sec 20
hand-window 5
keepalive 2 10"

# sso_up NAME USER PASS: connect, sign in with the browser, wait for the
# tunnel.
sso_up() {
    local url
    url=$(sso_start "$1" "$2") || return 1
    [ -n "$url" ] || { log "no WEB_AUTH link"; tail -n 5 "$W/cli-$1.log"; return 1; }
    browse "$url" "$2" "$3" "$1" || { cat "$W/browser-$1.out"; return 1; }
    grep -q "You are signed in" "$W/browser-$1.out" || { cat "$W/browser-$1.out"; return 1; }
    connected "$1" || { tail -n 5 "$W/cli-$1.log"; return 1; }
}

t_sign_in() {
    local url out
    url=$(sso_start a1 alice) || return 1
    [[ $url == "$WEB/oidc/login?l="* ]] && [ ${#url} -lt 240 ] || { log "link: $url"; return 1; }
    # The link's first page says which login it is for.
    out=$(ip netns exec "$NS_SRV" curl -sS "$url") || return 1
    for want in "nl-1" "alice" "$CLI_IP" "linux"; do
        grep -q "$want" <<<"$out" || { log "login page lacks $want"; return 1; }
    done
    browse "$url" alice 'alice pw 1' a1 || { cat "$W/browser-a1.out"; return 1; }
    grep -q "You are signed in" "$W/browser-a1.out" || { cat "$W/browser-a1.out"; return 1; }
    connected a1 || { tail -n 5 "$W/cli-a1.log"; return 1; }
    ip netns exec "$NS_CLI" ping -q -c 3 -W 2 10.99.0.1 >/dev/null || { log "no traffic"; return 1; }
    # The provider's group eng is tollgate's group eng: its pushed route.
    ip netns exec "$NS_CLI" ip route show 10.8.8.0/24 | grep -q . || { log "no route from group eng"; return 1; }
    [ "$(tg user show alice --json | json 'd["group"]')" = eng ] || { log "not in group eng"; return 1; }
}
check "the client gets a WEB_AUTH link (its page names server, account, address, client); signed in, the tunnel comes up, passes traffic, gets group eng's route" t_sign_in
check "the SSO user was provisioned with method oidc on the configured plan" provisioned_as alice oidc ssoplan

# gen-ovpn writes what an SSO user's client needs; the profile as written
# (only the username and password file from the command line) signs in.
t_profile() {
    local url
    "$W/bin/gen-ovpn" --config "$W/tollgate.toml" alice nl-1 --out "$W/alice.ovpn" 2>/dev/null || return 1
    grep -qx "setenv IV_SSO webauth" "$W/alice.ovpn" || { log "no IV_SSO in the profile"; return 1; }
    url=$(sso_launch g1 "$W/alice.ovpn" --auth-user-pass "$W/creds-alice") && [ -n "$url" ] ||
        { log "no link"; tail -n 5 "$W/cli-g1.log"; return 1; }
    browse "$url" alice 'alice pw 1' g1 || { cat "$W/browser-g1.out"; return 1; }
    connected g1 || { tail -n 5 "$W/cli-g1.log"; return 1; }
}
check "gen-ovpn's profile for an SSO user announces web auth and signs in as written" t_profile

# Where SSO is the default every web-auth client is sent a link at once,
# with no look-up; an account set to a password method is then answered on
# its password. Under a password default only an account set to oidc gets
# a link, found by a read-only look-up.
t_mixed() {
    local url
    echo 'lena pw 5' | tg user add lena --password-stdin --auth local --server nl-1 >/dev/null || return 1
    client_conf lena 'lena pw 5' "setenv IV_SSO webauth" > "$W/client-m1.conf"
    url=$(sso_launch m1 "$W/client-m1.conf") && [ -n "$url" ] || { log "no link under the SSO default"; return 1; }
    connected m1 || { tail -n 5 "$W/cli-m1.log"; return 1; }
    grep -q "ACCEPT user=lena .*(deferred, sign-in link)" "$W/srv.log" || { log "not decided with the link out"; return 1; }
    disconnect m1
    AUTH_DEFAULT=local use_oidc
    tg user add erin --auth oidc --plan ssoplan --server nl-1 >/dev/null || return 1
    connect m2 "$W/client-m1.conf"
    connected m2 || { tail -n 5 "$W/cli-m2.log"; return 1; }
    [ "$(grep -c "ACCEPT user=lena .*(deferred)$" "$W/srv.log")" = 1 ] || { log "lena was sent a link"; return 1; }
    disconnect m2
    url=$(sso_start m3 erin) && [ -n "$url" ] || { log "no link for an oidc account under a password default"; return 1; }
    browse "$url" erin 'erin pw 4' m3 || { cat "$W/browser-m3.out"; return 1; }
    connected m3 || { tail -n 5 "$W/cli-m3.log"; return 1; }
    disconnect m3
    # gen-ovpn marks an oidc user's profile under a password default; the
    # hook takes the mark's word for it (no look-up): even on a password
    # account's profile it sends the link, and the worker still answers
    # that account on its password.
    "$W/bin/gen-ovpn" --config "$W/tollgate.toml" erin nl-1 --out "$W/erin.ovpn" 2>/dev/null || return 1
    grep -qx "setenv UV_TOLLGATE_SSO 1" "$W/erin.ovpn" && grep -qx "push-peer-info" "$W/erin.ovpn" ||
        { log "no SSO mark in erin's profile"; return 1; }
    client_conf lena 'lena pw 5' "setenv IV_SSO webauth
setenv UV_TOLLGATE_SSO 1
push-peer-info" > "$W/client-m4.conf"
    url=$(sso_launch m4 "$W/client-m4.conf") && [ -n "$url" ] || { log "no link for a marked profile"; return 1; }
    connected m4 || { tail -n 5 "$W/cli-m4.log"; return 1; }
    [ "$(grep -c "ACCEPT user=lena .*(deferred, sign-in link)" "$W/srv.log")" = 2 ] || { log "not decided with the link out"; return 1; }
}
check "SSO default: a link at once, a password account answered on its password; password default: a link for an oidc account (looked up, or marked by gen-ovpn)" t_mixed
disconnect m4
use_oidc
tg user del erin >/dev/null

# The link and the state are single use: the callback URL the browser
# followed, and the link, opened again.
t_reuse() {
    local cb code
    cb=$(grep -o "$WEB/oidc/callback?[^ ]*" "$W/browser-a1.log" | head -n 1)
    [ -n "$cb" ] || { log "no callback in the browser's log"; return 1; }
    code=$(ip netns exec "$NS_SRV" curl -s -o /dev/null -w '%{http_code}' "$cb")
    [ "$code" = 410 ] || [ "$code" = 403 ] || { log "replayed callback answered $code"; return 1; }
    code=$(ip netns exec "$NS_SRV" curl -s -o /dev/null -w '%{http_code}' "$(grep -o "$WEB/oidc/login?l=[a-z2-7]*" "$W/browser-a1.log" | head -n 1)")
    [ "$code" = 410 ] || { log "reused link answered $code"; return 1; }
}
check "a used login link and a replayed callback (state) are refused" t_reuse

# The sign-in is bound to the browser that opened the link: a browser
# sent on to the provider with someone else's authorization URL (their
# state) comes back without the cookie and is refused.
t_other_browser() {
    local url loc out
    url=$(sso_start o1 alice) && [ -n "$url" ] || { log "no link"; return 1; }
    loc=$(ip netns exec "$NS_SRV" curl -s -o /dev/null -w '%{redirect_url}' -X POST -d "l=${url##*l=}" "$WEB/oidc/login")
    [[ $loc == "http://127.0.0.1:$OIDC_PORT/"* ]] || { log "continue went to: $loc"; return 1; }
    browse "$loc" alice 'alice pw 1' o1
    grep -q "started in another browser" "$W/browser-o1.out" || { cat "$W/browser-o1.out"; return 1; }
    grep -q "status: 403" "$W/browser-o1.out"
}
check "a sign-in finished in another browser than the one that opened the link is refused" t_other_browser

# Renegotiations by session token need no browser; a disable cuts the
# tunnel at the next one.
t_reneg() {
    local before i
    sso_up a2 alice 'alice pw 1' || return 1
    before=$(grep -c "ACCEPT user=alice " "$W/srv.log")
    for ((i = 0; i < 600; i++)); do
        [ "$(grep -c "ACCEPT user=alice " "$W/srv.log")" -ge $((before + 2)) ] && break
        sleep 0.1
    done
    [ "$(grep -c "ACCEPT user=alice " "$W/srv.log")" -ge $((before + 2)) ] || { log "fewer than two renegotiations"; return 1; }
    [ "$(tg events --user alice --json | json 'sum(1 for e in d if e["reason"] == "ok (session token)")')" -ge 2 ] ||
        { log "not by session token"; return 1; }
    ! grep -q "AUTH_FAILED\|SIGUSR1" "$W/cli-a2.log" || { log "the client was cut"; return 1; }
    ip netns exec "$NS_CLI" ping -q -c 3 -W 2 10.99.0.1 >/dev/null || { log "tunnel down"; return 1; }
    tg user disable alice >/dev/null || return 1
    for ((i = 0; i < 400; i++)); do
        grep -q "DENY user=alice .*account disabled" "$W/srv.log" && break
        sleep 0.1
    done
    grep -q "DENY user=alice .*account disabled" "$W/srv.log" || { log "not refused at the next renegotiation"; return 1; }
    wait_for "$W/cli-a2.log" "AUTH_FAILED|SIGUSR1|SIGTERM|Exiting" 30 || { log "the tunnel was not cut"; return 1; }
}
check "two renegotiations pass by session token without the browser; a disable cuts the tunnel at the next" t_reneg
tg user enable alice >/dev/null

# A client that sends no username (no auth-user-pass; the server has
# auth-user-pass-optional) is whoever signs in: the username claim names the
# account (provisioned here), the sessions, the sweep's charges and the
# renegotiations by session token are that user's, and the disconnect
# closes their session with its bytes.
t_unnamed() {
    local url out before i
    # OpenVPN's client needs a certificate when it sends no username.
    (
        cd "$W/pki" || exit 1
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout laptop.key -out laptop.csr -subj /CN=laptop-7 2>/dev/null &&
            openssl x509 -req -in laptop.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out laptop.crt -days 2 2>/dev/null
    ) || { log "no client certificate"; return 1; }
    client_conf u1 "" "setenv IV_SSO webauth
cert $W/pki/laptop.crt
key $W/pki/laptop.key" | grep -v '^auth-user-pass ' > "$W/client-u1.conf"
    url=$(sso_launch u1 "$W/client-u1.conf") && [ -n "$url" ] || { log "no link"; tail -n 5 "$W/cli-u1.log"; return 1; }
    out=$(ip netns exec "$NS_SRV" curl -sS "$url") || return 1
    grep -q "the account you sign in with" <<<"$out" || { log "login page: $out"; return 1; }
    browse "$url" erin 'erin pw 4' u1 || { cat "$W/browser-u1.out"; return 1; }
    grep -q "You are signed in" "$W/browser-u1.out" || { cat "$W/browser-u1.out"; return 1; }
    connected u1 || { tail -n 5 "$W/cli-u1.log"; return 1; }
    provisioned_as erin oidc ssoplan || { log "erin not provisioned"; return 1; }
    [ "$(tg sessions --open --json | json 'len([s for s in d if s["user"] == "erin"])')" = 1 ] ||
        { log "sessions: $(tg sessions --json)"; return 1; }
    ip netns exec "$NS_CLI" ping -q -c 20 -i 0.05 -s 1000 -W 2 10.99.0.1 >/dev/null || { log "no traffic"; return 1; }
    sweep >/dev/null || return 1
    [ "$(tg usage --user erin --json | json 'd[0]["total_bytes_in"]')" -gt 20000 ] ||
        { log "the sweep charged erin nothing: $(tg usage --user erin --json)"; return 1; }
    before=$(grep -c "ACCEPT user=erin " "$W/srv.log")
    for ((i = 0; i < 600; i++)); do
        [ "$(grep -c "ACCEPT user=erin " "$W/srv.log")" -ge $((before + 2)) ] && break
        sleep 0.1
    done
    [ "$(grep -c "ACCEPT user=erin " "$W/srv.log")" -ge $((before + 2)) ] || { log "fewer than two renegotiations"; return 1; }
    [ "$(tg events --user erin --json | json 'sum(1 for e in d if e["reason"] == "ok (session token)")')" -ge 2 ] ||
        { log "not by session token"; return 1; }
    ! grep -q "AUTH_FAILED\|SIGUSR1" "$W/cli-u1.log" || { log "the client was cut"; return 1; }
    # Its connection dropped, the client reconnects with its session token:
    # the same user, no new sign-in.
    local port; port=$(tg sessions --user erin --open --json | json 'd[0]["real_port"]')
    mgmt "kill $CLI_IP:$port" | grep -q SUCCESS || { log "management kill failed"; return 1; }
    wait_for "$W/cli-u1.log" "SIGUSR1" 30 || { log "the client did not restart"; return 1; }
    wait_for "$W/cli-u1.log" "Need hold release" 10 &&
        ip netns exec "$NS_CLI" bash -c 'exec 3<>/dev/tcp/127.0.0.1/7506 && read -r -t 5 _ <&3 &&
            printf "hold release\n" >&3 && read -r -t 5 _ <&3' || { log "could not release the client's hold"; return 1; }
    for ((i = 0; i < 300; i++)); do
        [ "$(grep -c "Initialization Sequence Completed" "$W/cli-u1.log")" -ge 2 ] && break
        sleep 0.1
    done
    [ "$(grep -c "Initialization Sequence Completed" "$W/cli-u1.log")" -ge 2 ] ||
        { log "no reconnection"; tail -n 20 "$W/cli-u1.log"; return 1; }
    [ "$(grep -c "WEB_AUTH" "$W/cli-u1.log")" -le 1 ] || { log "asked to sign in again"; return 1; }
    [ "$(tg sessions --user erin --open --json | json 'len(d)')" = 1 ] || { log "$(tg sessions --user erin --json)"; return 1; }
    before=$(grep -c "client-disconnect: CLOSE user=erin " "$W/srv.log")
    disconnect u1
    for ((i = 0; i < 150; i++)); do
        [ "$(grep -c "client-disconnect: CLOSE user=erin " "$W/srv.log")" -gt "$before" ] && break
        sleep 0.1
    done
    [ "$(grep -c "client-disconnect: CLOSE user=erin " "$W/srv.log")" -gt "$before" ] ||
        { log "no client-disconnect for erin"; return 1; }
    [ "$(tg sessions --user erin --json | json 'len([s for s in d if not s["open"]])')" = 2 ] ||
        { log "sessions: $(tg sessions --user erin --json)"; return 1; }
}
check "a client without a username is who signs in: provisioned, its session, charges, renegotiations and reconnection theirs" t_unnamed
disconnect u1

stop_server
start_server "auth-gen-token 0 external-auth"

# The sweep asks the provider again about each SSO tunnel (a refresh with
# the token it gave at sign-in): while the user is in the required group
# nothing changes; removed from it at the provider, the next sweep cuts the
# tunnel with the provider's reason.
use_oidc 'recheck_every = "1s"'
t_recheck() {
    local out
    sso_up r1 alice 'alice pw 1' || return 1
    sleep 1.5
    out=$(sweep 2>&1) || { log "sweep: $out"; return 1; }
    grep -q "asked the identity provider again about 1 single sign-on user" <<<"$out" || { log "sweep: $out"; return 1; }
    ! grep -q "kill" <<<"$out" || { log "sweep: $out"; return 1; }
    ip netns exec "$NS_CLI" ping -q -c 2 -W 2 10.99.0.1 >/dev/null || { log "tunnel down"; return 1; }
    oidc_user "$W/oidc" alice 'alice pw 1' eng
    sleep 1.5
    out=$(sweep 2>&1) || { log "sweep: $out"; return 1; }
    grep -q "killed alice: the identity provider no longer admits the user: not a member of the required group vpn" <<<"$out" ||
        { log "sweep: $out"; return 1; }
    wait_for "$W/cli-r1.log" "SIGUSR1|SIGTERM|Exiting" 30 || { log "the tunnel was not cut"; return 1; }
}
check "the sweep asks the provider again: still in the required group the tunnel stays, removed from it the tunnel is cut" t_recheck
disconnect r1
oidc_user "$W/oidc" alice 'alice pw 1' vpn eng
# The provider down at a recheck cuts nobody; the sweep says so and fails.
t_recheck_down() {
    local out rc
    sso_up r2 alice 'alice pw 1' || return 1
    oidcd_stop
    sleep 1.5
    out=$(sweep 2>&1)
    rc=$?
    oidcd_start "$W/oidc" || { log "the provider did not restart"; return 1; }
    [ $rc = 1 ] && grep -q "identity provider http://127.0.0.1:$OIDC_PORT .*1 single sign-on user(s) not rechecked" <<<"$out" ||
        { log "sweep exit $rc: $out"; return 1; }
    ! grep -q "kill" <<<"$out" || { log "sweep: $out"; return 1; }
    ip netns exec "$NS_CLI" ping -q -c 2 -W 2 10.99.0.1 >/dev/null || { log "tunnel down"; return 1; }
}
check "the provider down at a recheck: nobody is cut, the sweep says why and exits 1" t_recheck_down
disconnect r2
use_oidc

# signs_in_refused NAME VPN_USER SIGN_IN_USER PASS PAGE CLIENT_REASON: the
# client gets a link, the browser signs in as SIGN_IN_USER and is shown
# PAGE, and the client is refused with CLIENT_REASON.
signs_in_refused() {
    local url
    url=$(sso_start "$1" "$2") && [ -n "$url" ] || { log "no link"; return 1; }
    browse "$url" "$3" "$4" "$1"
    grep -q "$5" "$W/browser-$1.out" || { cat "$W/browser-$1.out"; return 1; }
    refused "$1" "$6"
}
check "a user outside the required group is refused, with a reason the client shows" \
    signs_in_refused g1 bob bob 'bob pw 2' "not in a group allowed" "not in the group allowed"
check "signing in as someone else than the VPN username is refused" \
    signs_in_refused w1 dave erin 'erin pw 4' "signed in as erin, not as dave" "invalid username or password"

t_no_webauth() {
    login_refused n1 dave x "signs in with a web browser"
}
check "a client that does not announce web auth is told what to use" t_no_webauth
t_fallback() {
    echo 'dave local pw' | tg user add dave --password-stdin --auth oidc --plan ssoplan --server nl-1 >/dev/null || return 1
    use_oidc "password_fallback = true"
    login_ok f1 dave 'dave local pw' || { use_oidc; return 1; }
    login_refused f2 dave 'wrong pw' "invalid username or password" || { use_oidc; return 1; }
    use_oidc
}
check "with password_fallback such a client may use the user's local password" t_fallback

t_test_auth() {
    local out rc
    out=$(ip netns exec "$NS_SRV" "$W/bin/tollgate" --config "$W/tollgate.toml" test-auth alice </dev/null)
    rc=$?
    [ $rc = 0 ] && grep -q "single sign-on: the client is sent a login link ($WEB/oidc/login" <<<"$out" &&
        grep -q "signs in at http://127.0.0.1:$OIDC_PORT as alice, in group vpn" <<<"$out" || { log "exit $rc: $out"; return 1; }
}
check "tollgate test-auth explains an SSO user's path" t_test_auth

# No resident process: with --idle-exit, tollgate web ends once unused.
t_idle_exit() {
    local pid i out
    ip netns exec "$NS_SRV" setpriv --reuid nobody --regid nogroup --clear-groups \
        "$W/bin/tollgate" --config "$W/tollgate.toml" web --listen 127.0.0.1:9482 --idle-exit 2 >> "$W/web-idle.log" 2>&1 &
    pid=$!
    for ((i = 0; i < 30; i++)); do
        out=$(ip netns exec "$NS_SRV" curl -fsS http://127.0.0.1:9482/health 2>/dev/null) && break
        sleep 0.1
    done
    [ "$out" = ok ] || { log "no answer: $(cat "$W/web-idle.log")"; kill "$pid"; return 1; }
    for ((i = 0; i < 50; i++)); do gone "$pid" && break; sleep 0.1; done
    gone "$pid" || { log "still running 5 s later"; kill "$pid"; return 1; }
    wait "$pid" && grep -q "idle for 2s, exiting" "$W/web-idle.log"
}
check "tollgate web --idle-exit serves, then exits once nobody has used it for that long" t_idle_exit

# An expired link: nobody signs in within the login's timeout.
stop_web
LOGIN_TIMEOUT=10s use_oidc
start_web || exit 1
t_expired() {
    local url code
    url=$(sso_start x1 erin) && [ -n "$url" ] || { log "no link"; return 1; }
    refused x1 "web sign-in not completed in time" || return 1
    code=$(ip netns exec "$NS_SRV" curl -s -o /dev/null -w '%{http_code}' "$url")
    [ "$code" = 410 ] || { log "the expired link answered $code"; return 1; }
}
check "a link nobody uses in time expires: the client is refused, the link answers 410" t_expired
disconnect x1
stop_web
use_oidc
start_web || exit 1

# The provider answering garbage at its token endpoint, then down.
oidcd_stop
OIDC_GARBAGE=1 oidcd_start "$W/oidc" || { echo "the provider did not restart"; exit 1; }
t_garbage() {
    local t0=$SECONDS
    signs_in_refused y1 erin erin 'erin pw 4' "could not be checked" "authentication service unavailable" || return 1
    [ $((SECONDS - t0)) -lt 15 ] || { log "took $((SECONDS - t0)) s"; return 1; }
    grep -q "token endpoint: not JSON" "$W/srv.log" || { log "no cause in the server log"; return 1; }
}
check "a provider answering garbage: a prompt refusal with a reason, the cause in the log" t_garbage
disconnect y1
oidcd_stop
t_down() {
    local url t0 code
    url=$(sso_start z1 erin) && [ -n "$url" ] || { log "no link"; return 1; }
    t0=$SECONDS
    code=$(ip netns exec "$NS_SRV" curl -s -o /dev/null -w '%{http_code}' -X POST -d "l=${url##*l=}" "$WEB/oidc/login")
    [ "$code" = 502 ] || { log "continue answered $code"; return 1; }
    refused z1 "authentication service unavailable" || return 1
    [ $((SECONDS - t0)) -lt 15 ] || { log "took $((SECONDS - t0)) s"; return 1; }
}
check "the provider stopped: a prompt refusal with a reason" t_down
disconnect z1

summary
