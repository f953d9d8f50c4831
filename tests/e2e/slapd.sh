# A throwaway OpenLDAP directory for tests and benchmarks. Sourced; needs
# Debian's slapd. The database, config and pid file live under DIR.
#
#   slapd_prepare DIR [TLS_CERT TLS_KEY TLS_CA]   config, base entries, the
#                                                 service account cn=reader
#                                                 (password in DIR/reader.secret);
#                                                 the pid file is SLAPD_PID
#                                                 (default DIR/slapd.pid)
#   ldap_person UID PASSWORD [GROUP_CN...]        an entry for slapd_load, with
#                                                 memberOf for each group (slapadd
#                                                 bypasses the memberof overlay,
#                                                 so the LDIF carries it)
#   ldap_group CN UID...                          a groupOfNames for slapd_load
#   slapd_load DIR < LDIF                         add entries (before start)
# Suffix dc=example,dc=org; people under ou=people, groups under ou=groups.

LDAP_BASE=dc=example,dc=org

slapd_prepare() {
    local dir=$1 tls=""
    mkdir -p "$dir/db"
    [ -n "${2:-}" ] && tls="TLSCACertificateFile $4
TLSCertificateFile $2
TLSCertificateKeyFile $3"
    cat > "$dir/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile ${SLAPD_PID:-$dir/slapd.pid}
$tls
database mdb
maxsize 10485760
suffix "$LDAP_BASE"
rootdn "cn=admin,$LDAP_BASE"
directory $dir/db
overlay memberof
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by users read by * none
CONF
    printf 'reader pw 42\n' > "$dir/reader.secret"
    {
        printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: example\n\n' "$LDAP_BASE"
        printf 'dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n\n' "$LDAP_BASE"
        printf 'dn: ou=groups,%s\nobjectClass: organizationalUnit\nou: groups\n\n' "$LDAP_BASE"
        printf 'dn: cn=reader,%s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: reader pw 42\n\n' "$LDAP_BASE"
    } | slapd_load "$dir"
}

ldap_person() {
    local g
    printf 'dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nuserPassword: %s\n' \
        "$1" "$LDAP_BASE" "$1" "$1" "$1" "$2"
    for g in "${@:3}"; do printf 'memberOf: cn=%s,ou=groups,%s\n' "$g" "$LDAP_BASE"; done
    printf '\n'
}

ldap_group() {
    local cn=$1 u
    shift
    printf 'dn: cn=%s,ou=groups,%s\nobjectClass: groupOfNames\ncn: %s\n' "$cn" "$LDAP_BASE" "$cn"
    for u in "$@"; do printf 'member: uid=%s,ou=people,%s\n' "$u" "$LDAP_BASE"; done
    printf '\n'
}

slapd_load() {
    slapadd -q -f "$1/slapd.conf" || { echo "slapadd failed" >&2; return 1; }
}
