#!/usr/bin/env bash
# The ldap auth method against a real OpenLDAP slapd (Debian's package, a
# throwaway database on loopback in the server's namespace) and the real
# OpenVPN server and client: provisioning on first login, wrong passwords,
# the required group, group mapping, filter injection, a directory down.
. "$(dirname "$0")/lib.sh"

command -v slapd >/dev/null || PATH=$PATH:/usr/sbin
command -v slapd >/dev/null || { echo "slapd is not installed (tests/run.sh installs it)"; exit 1; }
LDAP_PORT=3890
BASE=dc=example,dc=org
setup "[auth]
method = \"ldap\"
provision_plan = \"staffplan\"
[ldap]
url = \"ldap://127.0.0.1:$LDAP_PORT\"
bind_dn = \"cn=reader,$BASE\"
bind_password_file = \"$W/ldap.secret\"
base_dn = \"ou=people,$BASE\"
user_filter = \"(&(objectClass=inetOrgPerson)(uid={username}))\"
required_group = \"cn=vpn,ou=groups,$BASE\"
group_search_base = \"ou=groups,$BASE\"
group_filter = \"(&(objectClass=groupOfNames)(member={dn}))\"
timeout = \"3s\"
[ldap.groups]
\"cn=eng,ou=groups,$BASE\" = \"eng\""

# The service account's password: readable by the hooks' group only.
printf 'reader pw 42\n' > "$W/ldap.secret"
chown root:nogroup "$W/ldap.secret"
chmod 640 "$W/ldap.secret"

mkdir -p "$W/ldap/db"
cat > "$W/ldap/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $W/slapd.pid
database mdb
maxsize 10485760
suffix "$BASE"
rootdn "cn=admin,$BASE"
directory $W/ldap/db
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by users read by * none
CONF
person() { printf 'dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nuserPassword: %s\n\n' "$1" "$BASE" "$1" "$1" "$1" "$2"; }
{
    printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: example\n\n' "$BASE"
    printf 'dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n\n' "$BASE"
    printf 'dn: ou=groups,%s\nobjectClass: organizationalUnit\nou: groups\n\n' "$BASE"
    printf 'dn: cn=reader,%s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: reader pw 42\n\n' "$BASE"
    person lara 'lara pass 123'
    person eve 'eve pass 456'
    person otto 'otto pass 789'
    person alice 'alice pass 000'
    printf 'dn: cn=vpn,ou=groups,%s\nobjectClass: groupOfNames\ncn: vpn\nmember: uid=lara,ou=people,%s\nmember: uid=eve,ou=people,%s\nmember: uid=alice,ou=people,%s\n\n' "$BASE" "$BASE" "$BASE" "$BASE"
    printf 'dn: cn=eng,ou=groups,%s\nobjectClass: groupOfNames\ncn: eng\nmember: uid=eve,ou=people,%s\n\n' "$BASE" "$BASE"
} > "$W/ldap/data.ldif"
slapadd -q -f "$W/ldap/slapd.conf" -l "$W/ldap/data.ldif" || { echo "slapadd failed"; exit 1; }
start_slapd() {
    ip netns exec "$NS_SRV" slapd -f "$W/ldap/slapd.conf" -h "ldap://127.0.0.1:$LDAP_PORT/" || return 1
    wait_for "$W/slapd.pid" . 10
}
start_slapd || { echo "slapd did not start"; exit 1; }

tg plan add staffplan --quota 10GiB >/dev/null
tg group add eng --push 'route 10.8.8.0 255.255.255.0' >/dev/null
start_server

check "an unknown directory user is provisioned on first login and connects" login_ok l1 lara 'lara pass 123'
t_provisioned() {
    local j; j=$(tg user show lara --json) || return 1
    [ "$(json 'd["auth_method"]' <<<"$j")" = ldap ] && [ "$(json 'd["plan"]' <<<"$j")" = staffplan ]
}
check "the provisioned account records the ldap method and the configured plan" t_provisioned
check "a wrong directory password is refused" login_refused l2 lara 'lara pass 124' 'invalid username or password'
check "a user outside the required group is refused with a reason" \
    login_refused o1 otto 'otto pass 789' 'not in the group allowed'
check "an unknown name is refused" login_refused n1 nobody 'x pass 999' 'invalid username or password'
t_eng_route() {
    up e1 eve 'eve pass 456' || return 1
    ip netns exec "$NS_CLI" ip route show 10.8.8.0/24 | grep -q . || { log "no route from group eng"; return 1; }
    [ "$(tg user show eve --json | json 'd["group"]')" = eng ]
}
check "an eng member gets the eng group's pushed route" t_eng_route
disconnect_all
for bad in '*)(uid=*' 'alice)(|(uid=*' '*' 'lara)(uid=*'; do
    check "the name '$bad' never authenticates" login_refused i1 "$bad" 'lara pass 123' 'invalid username or password'
done
check "no account was provisioned for an injection attempt" bash -c "! '$W/bin/tollgate' --config '$W/tollgate.toml' user list | grep -q ')'"

# The directory stops: a prompt refusal with the "unavailable" reason, no lockout.
kill "$(cat "$W/slapd.pid")"
wait_for_gone() { local i; for ((i = 0; i < 50; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
wait_for_gone "$(cat "$W/slapd.pid")"
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
