#!/usr/bin/env bash
# The self-service site of tollgate web over HTTPS, used by a person in
# Debian's headless Chromium (playwright-core from npm) from the client's
# namespace: refusals that tell nothing, second-factor enrolment, sign-in
# with password and code, a downloaded profile that connects the real
# OpenVPN client, the bytes of that session on the overview; then the JSON
# API with admin tokens and user cookies (curl), and sessions that end.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/npm.sh"

PLAYWRIGHT_VERSION=1.65.1
PLAYWRIGHT_CACHE=${PLAYWRIGHT_CACHE:-/var/cache/tollgate-tests/playwright}
command -v chromium >/dev/null || { echo "chromium is missing (apt-get install chromium)"; exit 1; }
npm_cached "$PLAYWRIGHT_CACHE" playwright-core "$PLAYWRIGHT_VERSION" || exit 1

WEB_PORT=8443
BASE=https://$SRV_IP:$WEB_PORT
setup "[self_service]
public_url = \"$BASE\""
PW='correct horse battery'
echo "$PW" | tg user add alice --password-stdin --server nl-1 >/dev/null
echo "$PW" | tg user add bob --password-stdin --server nl-1 >/dev/null
start_server
# Screenshots for a person to look at (docs/screenshots keeps the ones checked).
SHOTS=${TOLLGATE_E2E_SHOTS:-$ROOT/target/e2e-screenshots/selfservice-$STORE}

# The site's certificate (self-signed, for the server's address).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$W/web.key" -out "$W/web.crt" -subj "/CN=$SRV_IP" -addext "subjectAltName=IP:$SRV_IP" 2>/dev/null
chmod 644 "$W/web.key" "$W/web.crt"   # read by nobody; this directory is the test's own
SITE_SPKI=$(openssl x509 -pubkey -noout -in "$W/web.crt" | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | base64)

# tollgate web as the hooks' user, in the server's namespace, on its address.
ip netns exec "$NS_SRV" setpriv --reuid nobody --regid nogroup --clear-groups \
    "$W/bin/tollgate" --config "$W/tollgate.toml" web --listen "$SRV_IP:$WEB_PORT" \
    --tls-cert "$W/web.crt" --tls-key "$W/web.key" >> "$W/web.log" 2>&1 &
echo $! > "$W/web.pid"
for ((i = 0; i < 50; i++)); do
    ip netns exec "$NS_CLI" curl -ksf "$BASE/health" >/dev/null 2>&1 && break
    sleep 0.1
done
ip netns exec "$NS_CLI" curl -ksf "$BASE/health" >/dev/null || { echo "tollgate web did not start:"; cat "$W/web.log"; exit 1; }

# The browser script beside a link to the cached packages (ES modules look
# for packages next to the importing file).
mkdir -p "$W/browser"
cp "$ROOT/tests/e2e/web/selfservice.mjs" "$W/browser/"
ln -sfn "$PLAYWRIGHT_CACHE/node_modules" "$W/browser/node_modules"
# browser STEP ARGS...: one step in a fresh Chromium in the client's
# namespace; its JSON result in $W/browser-STEP.json.
browser() {
    local s=$1
    HOME=$W/browser SITE_SPKI=$SITE_SPKI ip netns exec "$NS_CLI" node "$W/browser/selfservice.mjs" "$BASE" "$W/browser" "$@" \
        > "$W/browser-$s.json" 2> "$W/browser-$s.log" ||
        { log "browser step $s failed:"; tail -n 15 "$W/browser-$s.log" | sed 's/^/    | /'; return 1; }
}
field() { json "$1" < "$W/browser-$2.json"; }
# curl in the client's namespace, trusting the site's certificate.
web() { ip netns exec "$NS_CLI" curl -sS --cacert "$W/web.crt" "$@"; }

t_refusals() {
    browser refusals alice 'wrong password' mallory || return 1
    [ "$(field 'd["known"]["status"]' refusals)" = 401 ] || { log "status $(field 'd["known"]["status"]' refusals)"; return 1; }
    [ "$(field 'd["known"] == d["unknown"]' refusals)" = True ] || { log "$(cat "$W/browser-refusals.json")"; return 1; }
    # (Here-strings, not pipes into grep -q: under pipefail a writer cut
    # off by grep's early exit would fail the check.)
    grep -q "is not right" <<<"$(field 'd["known"]["text"]' refusals)" &&
        grep -q "sign-in of mallory from $CLI_IP refused: unknown user" "$W/web.log"
}
check "in Chromium, a wrong password and an unknown user get the same page (401)" t_refusals

t_enrol() {
    browser enrol alice "$PW" || return 1
    [ "$(field 'd["qr"]' enrol)" = True ] && [ "$(field 'd["signedOut"]' enrol)" = True ] &&
        grep -q "authenticator app is on" <<<"$(field 'd["note"]' enrol)" &&
        grep -q 'second factor: *totp' <<<"$(tg user show alice)"
}
check "in Chromium, enrolment shows a QR code and a confirmed code turns the second factor on" t_enrol
SECRET=$(field 'd["secret"]' enrol 2>/dev/null)

t_signin_download() {
    browser signin alice "$PW" "$SECRET" "$W/alice.ovpn" || return 1
    [ "$(field 'd["title"]' signin)" = "Your VPN" ] && [ "$(field 'd["filename"]' signin)" = alice-nl-1.ovpn ] || {
        log "$(cat "$W/browser-signin.json")"; return 1; }
    # Exactly what gen-ovpn makes (its first line says when it was made).
    diff <(tail -n +2 "$W/alice.ovpn") <("$W/bin/gen-ovpn" --config "$W/tollgate.toml" alice nl-1 | tail -n +2) >&2
}
check "in Chromium, password and code sign in, and the profile downloaded is gen-ovpn's" t_signin_download

t_profile_connects() {
    # The downloaded file as it is; the client answers its static challenge
    # with the next code (the sign-in used this step's).
    interactive dl "$W/alice.ovpn" static alice "$PW" "$SECRET" 1 || return 1
    connected dl || return 1
    ip netns exec "$NS_CLI" ping -c 5 -i 0.2 -s 1200 -W 2 10.99.0.1 >/dev/null || return 1
    disconnect dl
    # client-disconnect records the session's bytes.
    local i
    for ((i = 0; i < 50; i++)); do
        [ "$(tg sessions --user alice --json | json 'sum(1 for s in d if s["closed_at"])')" -ge 1 ] && return 0
        sleep 0.1
    done
    log "no closed session recorded"; return 1
}
check "the downloaded profile connects the real OpenVPN client" t_profile_connects

t_usage_page() {
    browser usage || return 1
    local want; want=$(tg usage --user alice --json | json 'd[0]["period_bytes_in"] + d[0]["period_bytes_out"]')
    [ "$want" -gt 6000 ] || { log "only $want bytes recorded"; return 1; }
    [ "$(field 'd["exact"]' usage)" = "($want bytes)" ] || { log "page: $(field 'd["exact"]' usage), usage: $want"; return 1; }
    grep -q "nl-1" <<<"$(field 'd["sessions"]' usage)"
}
check "in Chromium, the overview shows the bytes of that session" t_usage_page

# The JSON API.
TOKEN=$(tg token add shop --scope profile,usage 2>/dev/null)
t_token_profile() {
    local code
    code=$(web -o "$W/api.ovpn" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        "$BASE/api/v1/users/alice/servers/nl-1/openvpn") || return 1
    [ "$code" = 200 ] || { log "HTTP $code"; return 1; }
    diff <(tail -n +2 "$W/api.ovpn") <("$W/bin/gen-ovpn" --config "$W/tollgate.toml" alice nl-1 | tail -n +2) >&2 &&
        [ "$(web -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/users/alice/usage" | json 'd["user"]')" = alice ]
}
check "API: an admin token downloads a user's profile (gen-ovpn's) and reads usage" t_token_profile

status() { web -o /dev/null -w '%{http_code}' "$@"; }
check "API: a token is refused what its scopes leave out (403)" \
    test "$(status -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/users/alice/sessions")" = 403
check "tollgate token list shows the token, never its secret" bash -c "
    out=\$('$W/bin/tollgate' --config '$W/tollgate.toml' token list --json)
    grep -q '\"name\": \"shop\"' <<<\"\$out\" && grep -q '\"last_used_at\": \"20' <<<\"\$out\" && ! grep -qF '${TOKEN#tgapi_}' <<<\"\$out\""
tg token revoke shop >/dev/null
check "API: a revoked token is refused (401)" \
    test "$(status -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/users/alice/servers/nl-1/openvpn")" = 401
check "API: no credentials, no data (401)" test "$(status "$BASE/api/v1/usage")" = 401

# Bob signs in with curl: the form's anti-forgery cookie first.
JAR=$W/bob.jar
bob_signin() {
    local pre
    pre=$(web -c "$JAR" "$BASE/signin" | sed -n 's/.*name="pre" value="\([a-z2-7]*\)".*/\1/p')
    [ -n "$pre" ] || return 1
    web -b "$JAR" -c "$JAR" -o /dev/null -w '%{http_code} %{redirect_url}' \
        --data-urlencode "pre=$pre" --data-urlencode username=bob --data-urlencode "password=$PW" "$BASE/signin"
}
t_cookie_flags() {
    local r; r=$(bob_signin) || return 1
    [ "$r" = "303 $BASE/" ] || { log "sign-in answered $r"; return 1; }
    # curl's jar marks HttpOnly cookies with a prefix; Secure is column 4.
    grep -P '^#HttpOnly_\S+\t\S+\t/\tTRUE\t\d+\ttollgate_site\t[a-z2-7]{26}$' "$JAR" >/dev/null || { cat "$JAR" >&2; return 1; }
    grep -qi "^content-security-policy: default-src 'none'" <<<"$(web -D - -o /dev/null -b "$JAR" "$BASE/")"
}
check "sign-in sets a Secure, HttpOnly session cookie, and pages carry a CSP" t_cookie_flags
check "API: a user's cookie reads their own usage" \
    test "$(web -b "$JAR" "$BASE/api/v1/usage" | json 'd["user"]')" = bob
check "API: a user's cookie cannot read another user's usage or profile (403)" bash -c "
    [ \"\$(ip netns exec $NS_CLI curl -s --cacert '$W/web.crt' -o /dev/null -w '%{http_code}' -b '$JAR' '$BASE/api/v1/users/alice/usage')\" = 403 ] &&
    [ \"\$(ip netns exec $NS_CLI curl -s --cacert '$W/web.crt' -o /dev/null -w '%{http_code}' -b '$JAR' '$BASE/api/v1/users/alice/servers/nl-1/openvpn')\" = 403 ]"
check "a form posted without the session's anti-forgery token is refused (403)" \
    test "$(status -b "$JAR" -d csrf=forged "$BASE/signout")" = 403
check "a sign-in posted without the form's cookie is refused (400)" \
    test "$(status --data-urlencode username=bob --data-urlencode "password=$PW" -d pre=abc "$BASE/signin")" = 400
tg user disable bob >/dev/null
check "tollgate user disable ends the user's web session (401)" test "$(status -b "$JAR" "$BASE/api/v1/usage")" = 401

# Keep the screenshots where a person can look at them.
mkdir -p "$SHOTS" && cp "$W"/browser/shots/*.png "$SHOTS/" 2>/dev/null && echo "    screenshots: $SHOTS"
summary
