#!/usr/bin/env bash
# The ldap auth method against a real OpenLDAP slapd (Debian's package, a
# throwaway database on loopback in the server's namespace) and the real
# OpenVPN server and client: provisioning on first login, wrong passwords,
# the required group, group mapping, filter injection, a directory down.
. "$(dirname "$0")/lib.sh"

command -v slapd >/dev/null || PATH=$PATH:/usr/sbin
command -v slapd >/dev/null || { echo "slapd is not installed (tests/run.sh installs it)"; exit 1; }
LDAP_PORT=3890
LDAPS_PORT=6360
BASE=dc=example,dc=org   # as in slapd.sh
setup
cp "$W/tollgate.toml" "$W/base.toml"
# use_ldap URL [STARTTLS CA_FILE [direct|memberof]]: the config's [ldap]
# section (the hooks read the config at every call); "direct": bind with a
# DN template instead of search-then-bind; "memberof": groups from the
# user's memberOf instead of a group search.
use_ldap() {
    local ca="" lookup groups
    [ -n "${3:-}" ] && ca="ca_file = \"$3\""
    groups="group_search_base = \"ou=groups,$BASE\"
group_filter = \"(&(objectClass=groupOfNames)(member={dn}))\""
    [ "${4:-}" = memberof ] && groups=""
    lookup="bind_dn = \"cn=reader,$BASE\"
bind_password_file = \"$W/ldap.secret\"
base_dn = \"ou=people,$BASE\"
user_filter = \"(&(objectClass=inetOrgPerson)(uid={username}))\""
    [ "${4:-}" = direct ] && lookup="user_dn = \"uid={username},ou=people,$BASE\""
    cp "$W/base.toml" "$W/tollgate.toml"
    cat >> "$W/tollgate.toml" <<CONF
[auth]
method = "ldap"
provision_plan = "staffplan"
[ldap]
url = "$1"
starttls = ${2:-false}
$ca
$lookup
required_group = "cn=vpn,ou=groups,$BASE"
$groups
timeout = "3s"
[ldap.groups]
"cn=eng,ou=groups,$BASE" = "eng"
CONF
}
use_ldap "ldap://127.0.0.1:$LDAP_PORT"

. "$(dirname "$0")/slapd.sh"
SLAPD_PID=$W/slapd.pid   # where lib.sh's cleanup finds it
# A certificate for the directory at 127.0.0.1, from the test CA; and a
# second CA that did not sign it.
(
    cd "$W/pki" &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ldap.key -out ldap.csr \
            -subj /CN=127.0.0.1 2>/dev/null &&
        printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > ldap.ext &&
        openssl x509 -req -in ldap.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out ldap.crt -days 2 \
            -extfile ldap.ext 2>/dev/null &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout other-ca.key \
            -out other-ca.crt -days 2 -subj /CN=other-ca 2>/dev/null
) || { echo "LDAP certificate setup failed"; exit 1; }
chmod 644 "$W/pki/ca.crt" "$W/pki/other-ca.crt"
slapd_prepare "$W/ldap" "$W/pki/ldap.crt" "$W/pki/ldap.key" "$W/pki/ca.crt" || exit 1
{
    ldap_person lara 'lara pass 123' vpn
    ldap_person eve 'eve pass 456' vpn eng
    ldap_person otto 'otto pass 789'
    ldap_person alice 'alice pass 000' vpn
    # memberOf only (no group lists her): found by memberOf, not by a search.
    ldap_person mona 'mona pass 321' vpn eng
    ldap_group vpn lara eve alice
    ldap_group eng eve
} | slapd_load "$W/ldap" || exit 1
# The service account's password: readable by the hooks' group only.
cp "$W/ldap/reader.secret" "$W/ldap.secret"
chown root:nogroup "$W/ldap.secret"
chmod 640 "$W/ldap.secret"
start_slapd() {
    ip netns exec "$NS_SRV" slapd -f "$W/ldap/slapd.conf" \
        -h "ldap://127.0.0.1:$LDAP_PORT/ ldaps://127.0.0.1:$LDAPS_PORT/" || return 1
    wait_for "$W/slapd.pid" . 10
}
start_slapd || { echo "slapd did not start"; exit 1; }

tg plan add staffplan --quota 10GiB >/dev/null
tg group add eng --push 'route 10.8.8.0 255.255.255.0' >/dev/null
start_server

check "an unknown directory user is provisioned on first login and connects" login_ok l1 lara 'lara pass 123'
check "the provisioned account records the ldap method and the configured plan" provisioned_as lara ldap staffplan
check "a wrong directory password is refused" login_refused l2 lara 'lara pass 124' 'invalid username or password'
check "a wrong directory password counts toward the lockout" \
    bash -c "[ \"\$('$W/bin/tollgate' --config '$W/tollgate.toml' user show lara --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"failed_count\"])')\" = 1 ]"
check "another spelling of a name (LARA) is refused and gets no account of its own" \
    login_refused c1 LARA 'lara pass 123' 'invalid username or password'
check "no account LARA was provisioned" bash -c "! '$W/bin/tollgate' --config '$W/tollgate.toml' user show LARA >/dev/null 2>&1"
# test-auth where the hooks run: the directory listens in the server's namespace.
tg_srv() { ip netns exec "$NS_SRV" "$W/bin/tollgate" --config "$W/tollgate.toml" "$@"; }
t_test_auth() {
    local known fresh
    known=$(echo 'lara pass 123' | tg_srv test-auth lara --password-stdin)
    fresh=$(echo 'alice pass 000' | tg_srv test-auth alice --password-stdin)
    grep -q '^ACCEPT lara' <<<"$known" && grep -q 'would create the account on plan staffplan' <<<"$fresh" &&
        ! tg user show alice >/dev/null 2>&1
}
check "tollgate test-auth asks the directory, and creates no account" t_test_auth
check "a user outside the required group is refused with a reason" \
    login_refused o1 otto 'otto pass 789' 'not in the group allowed'
check "an unknown name is refused" login_refused n1 nobody 'x pass 999' 'invalid username or password'
# t_eng_member NAME USER PASS: connects, in group eng, with its pushed route.
t_eng_member() {
    up "$1" "$2" "$3" || return 1
    ip netns exec "$NS_CLI" ip route show 10.8.8.0/24 | grep -q . || { log "no route from group eng"; return 1; }
    [ "$(tg user show "$2" --json | json 'd["group"]')" = eng ]
}
check "an eng member gets the eng group's pushed route" t_eng_member e1 eve 'eve pass 456'
disconnect_all
t_disabled() {
    tg user disable eve >/dev/null
    login_refused x1 eve 'eve pass 456' 'invalid username or password' || return 1
    grep -q "DENY user=eve .*account disabled (the password was not checked)" "$W/srv.log"
}
check "a disabled directory user is refused without asking the directory" t_disabled
for bad in '*)(uid=*' 'alice)(|(uid=*' '*' 'lara)(uid=*'; do
    check "the name '$bad' never authenticates" login_refused i1 "$bad" 'lara pass 123' 'invalid username or password'
done
check "no account was provisioned for an injection attempt" bash -c "! '$W/bin/tollgate' --config '$W/tollgate.toml' user list | grep -q ')'"

# TLS: StartTLS and ldaps with the CA that signed the directory's
# certificate; another CA is a refusal as "unavailable", never a fallback.
use_ldap "ldap://127.0.0.1:$LDAP_PORT" true "$W/pki/ca.crt"
check "StartTLS with the directory's CA" login_ok t1 lara 'lara pass 123'
use_ldap "ldap://127.0.0.1:$LDAP_PORT" true "$W/pki/other-ca.crt"
check "StartTLS really runs: with another CA it is refused as unavailable" \
    login_refused t0 lara 'lara pass 123' 'authentication service unavailable'
use_ldap "ldaps://127.0.0.1:$LDAPS_PORT" false "$W/pki/ca.crt"
check "ldaps with the directory's CA" login_ok t2 lara 'lara pass 123'
use_ldap "ldaps://127.0.0.1:$LDAPS_PORT" false "$W/pki/other-ca.crt"
check "ldaps with a CA that did not sign the directory's certificate is refused as unavailable" \
    login_refused t3 lara 'lara pass 123' 'authentication service unavailable'
use_ldap "ldap://127.0.0.1:$LDAP_PORT"

# Groups from the user's memberOf attribute (Active Directory, OpenLDAP's
# memberof overlay) instead of a group search.
use_ldap "ldap://127.0.0.1:$LDAP_PORT" false "" memberof
check "memberOf: the required group and the eng mapping come from the user's entry" \
    t_eng_member m1 mona 'mona pass 321'
disconnect_all
check "memberOf: a user whose entry lists no vpn group is refused" \
    login_refused m2 otto 'otto pass 789' 'not in the group allowed'
use_ldap "ldap://127.0.0.1:$LDAP_PORT"
check "group search: mona, in no group's member list, is refused" \
    login_refused m3 mona 'mona pass 321' 'not in the group allowed'

# Direct bind with a DN template (no service account).
use_ldap "ldap://127.0.0.1:$LDAP_PORT" false "" direct
check "direct bind: the right password connects" login_ok b1 lara 'lara pass 123'
check "direct bind: a wrong password is refused" login_refused b2 lara 'nope nope 1' 'invalid username or password'
check "direct bind: the name '*)(uid=*' never authenticates" login_refused b3 '*)(uid=*' 'lara pass 123' 'invalid username or password'
check "direct bind: another spelling (Lara) is refused" login_refused b4 Lara 'lara pass 123' 'invalid username or password'
use_ldap "ldap://127.0.0.1:$LDAP_PORT"

# The directory hangs (stopped, its socket still open): refused as
# unavailable once the helper's deadline (3 x timeout + 2 s) runs out.
t_hang() {
    local t0=$SECONDS rc=0
    kill -STOP "$(cat "$W/slapd.pid")"
    login_refused h1 lara 'lara pass 123' 'authentication service unavailable' || rc=1
    kill -CONT "$(cat "$W/slapd.pid")"
    [ $rc = 0 ] && [ $((SECONDS - t0)) -le 20 ] || { log "rc $rc after $((SECONDS - t0)) s"; return 1; }
    grep -Eq "directory ldap://127.0.0.1:$LDAP_PORT unavailable: .*(timeout|timed out)" "$W/srv.log"
}
check "the directory hangs: refused as unavailable within the deadline, named in the log" t_hang

# The directory stops: a prompt refusal with the "unavailable" reason, no lockout.
slapd_pid=$(cat "$W/slapd.pid")
kill "$slapd_pid"
wait_for_gone() { local i; for ((i = 0; i < 50; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
wait_for_gone "$slapd_pid"
t_down() {
    local t0=$SECONDS before
    before=$(tg user show lara --json | json 'd["failed_count"]')
    login_refused d1 lara 'lara pass 123' 'authentication service unavailable' || return 1
    [ $((SECONDS - t0)) -le 15 ] || { log "took $((SECONDS - t0)) s"; return 1; }
    grep -q "directory ldap://127.0.0.1:$LDAP_PORT unavailable" "$W/srv.log" || { log "no log line naming the server"; return 1; }
    [ "$(tg user show lara --json | json 'd["failed_count"]')" = "$before" ] || { log "the outage counted as a failure"; return 1; }
}
check "the directory down: refused promptly as unavailable, named in the log, no lockout count" t_down
start_slapd
check "the directory back: the user connects again" login_ok l3 lara 'lara pass 123'

summary
