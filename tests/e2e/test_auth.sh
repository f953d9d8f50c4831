#!/usr/bin/env bash
# Password auth against a real OpenVPN server (issue: foundation).
. "$(dirname "$0")/lib.sh"

setup '[lockout]
max_failures = 3'
tg plan add basic >/dev/null
tg plan add trial --expires-after 1s >/dev/null
pw() { echo 'correct horse battery'; }
pw | tg user add alice --password-stdin --server nl-1 >/dev/null
pw | tg user add dave --password-stdin --server nl-1 --disabled >/dev/null
pw | tg user add erin --password-stdin --server nl-1 --expires 2020-01-31 >/dev/null
pw | tg user add frank --password-stdin >/dev/null                   # no grant
pw | tg user add grace --password-stdin --server nl-1 --plan trial >/dev/null
tg group add staff --server nl-1 >/dev/null
pw | tg user add heidi --password-stdin --group staff >/dev/null     # grant via group
start_server

GENERIC='invalid username or password'
check "right password connects" login_ok a1 alice 'correct horse battery'
check "grant through a group connects" login_ok h1 heidi 'correct horse battery'
check "wrong password is refused" login_refused a2 alice 'wrong horse' "$GENERIC"
check "unknown user is refused like a wrong password" login_refused u1 mallory 'correct horse battery' "$GENERIC"
check "disabled user is refused" login_refused d1 dave 'correct horse battery' 'account disabled'
check "expired account is refused" login_refused e1 erin 'correct horse battery' 'account expired'
check "expired plan is refused" login_refused g1 grace 'correct horse battery' 'plan trial expired'
check "user without a grant is refused" login_refused f1 frank 'correct horse battery' 'no access to this server'
check "disabled user with a wrong password learns nothing" login_refused d2 dave 'nope nope' "$GENERIC"

# Lockout: 3 failures lock even the right password out, until unlock.
# (alice already has one failure from above.)
login_refused l1 alice 'bad 1' "$GENERIC" >/dev/null
login_refused l2 alice 'bad 2' "$GENERIC" >/dev/null
# Locked: the right password gets exactly the answer a wrong one gets (the
# lock is no password oracle); only the admin's log says why.
t_locked() {
    login_refused l3 alice 'correct horse battery' "$GENERIC" || return 1
    grep -Eq "DENY user=alice .*locked out until" "$W/srv.log"
}
check "after the lockout threshold the right password is refused like a wrong one" t_locked
check "tollgate user show reports the lock" bash -c "'$W/bin/tollgate' --config '$W/tollgate.toml' user show alice --json | grep -q '\"locked\": true'"
tg user unlock alice >/dev/null
check "after tollgate user unlock the right password connects" login_ok l4 alice 'correct horse battery'

check "enable lets a disabled user in" bash -c "'$W/bin/tollgate' --config '$W/tollgate.toml' user enable dave >/dev/null"
check "enabled user connects" login_ok d3 dave 'correct horse battery'

# The server logged one line per decision, from the hook running as nobody.
check "hook ran as nobody and logged decisions" grep -Eq "tollgate auth-verify: DENY user=mallory ip=$CLI_IP server=nl-1( \(deferred\))?: unknown user" "$W/srv.log"
if [ "${TOLLGATE_E2E_DEFER:-auto}" = never ]; then
    check "auth decided inline (defer = never)" bash -c "grep -q 'auth-verify: ACCEPT user=alice' '$W/srv.log' && ! grep -q '(deferred)' '$W/srv.log'"
else
    check "auth deferred by default (OpenVPN offers auth_control_file)" grep -q "auth-verify: ACCEPT user=alice ip=$CLI_IP server=nl-1 (deferred)" "$W/srv.log"
fi
check "no password ever reaches the log" bash -c "! grep -q 'correct horse' '$W/srv.log'"
check "auth events are recorded" bash -c "'$W/bin/tollgate' --config '$W/tollgate.toml' events --user mallory --json | grep -q 'unknown user'"
[ "$STORE" = sqlite ] && check "database files stay owned by nobody" bash -c "[ \"\$(stat -c %U '$W/db/tollgate.db')\" = nobody ]"

summary
