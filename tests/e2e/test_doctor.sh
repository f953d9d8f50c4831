#!/usr/bin/env bash
# tollgate doctor against a real OpenVPN server: clean on a working setup,
# and each misconfiguration it knows is made here, flagged with its fix, and
# (where OpenVPN can show it) seen to break a real login first.
. "$(dirname "$0")/lib.sh"

setup 'management = "127.0.0.1:7505"'
GOOD="auth-gen-token 0 external-auth"
start_server "$GOOD"
cp "$W/server.conf" "$W/good.conf"
printf 'pw-doctor-1\n' | tg user add dora --password-stdin --all-servers >/dev/null

# doctor [ARGS...]: run it on the server config in use, as JSON, into $W/doctor.json.
doctor() {
    tg doctor --openvpn-config "$W/server.conf" --json "$@" > "$W/doctor.json"
}
# flagged CHECK TEXT: doctor exits 1 and reports CHECK as an error whose
# message contains TEXT, with a fix; the text output has it on one line.
flagged() {
    local check=$1 text=$2 rc
    doctor; rc=$?
    [ "$rc" = 1 ] || { log "doctor exited $rc, not 1"; cat "$W/doctor.json"; return 1; }
    python3 - "$W/doctor.json" "$check" "$text" <<'PY' || return 1
import json, sys
d = json.load(open(sys.argv[1]))
hits = [c for c in d["checks"] if c["check"] == sys.argv[2] and c["status"] == "error"]
ok = not d["ok"] and any(sys.argv[3] in c["message"] and c.get("fix") for c in hits)
if not ok:
    print("    no error for %s containing %r: %s" % (sys.argv[2], sys.argv[3], json.dumps(d["checks"])))
sys.exit(0 if ok else 1)
PY
    tg doctor --openvpn-config "$W/server.conf" > "$W/doctor.txt"
    grep -F "ERROR  $check: " "$W/doctor.txt" | grep -F "$text" | grep -qF "; fix: " ||
        { log "the text output lacks the $check line:"; sed 's/^/    | /' "$W/doctor.txt"; return 1; }
}
# clean: doctor finds nothing wrong.
clean() {
    doctor || { log "doctor exited $?"; python3 -m json.tool "$W/doctor.json" | sed 's/^/    | /'; return 1; }
    tg doctor --openvpn-config "$W/server.conf" > "$W/doctor.txt" && grep -q '^0 problems' "$W/doctor.txt"
}
# restart_with EXTRA...: the server again with these extra directives.
restart_with() { stop_server; start_server "$(printf '%s\n' "$@")"; }
# conf_with EXTRA...: only the file doctor reads, not the running server.
conf_with() { cp "$W/good.conf" "$W/server.conf"; printf '%s\n' "$@" >> "$W/server.conf"; }

t_clean() {
    login_ok c0 dora pw-doctor-1 && clean
}
check "a working setup logs in and doctor finds nothing wrong" t_clean

t_script_security() {
    # OpenVPN takes the last script-security line.
    restart_with "$GOOD" "script-security 1"
    ! login_ok c1 dora pw-doctor-1 >/dev/null || { log "logged in with script-security 1"; return 1; }
    flagged script-security "OpenVPN will not run the hooks"
}
check "script-security 1: OpenVPN refuses the login, doctor says so" t_script_security

t_hook_mode() {
    restart_with "$GOOD"
    chmod 700 "$W/bin/auth-verify"
    local r=0
    ! login_ok c2 dora pw-doctor-1 >/dev/null || { log "logged in with a hook nobody cannot run"; r=1; }
    [ "$r" = 0 ] && flagged hooks "nobody:nogroup cannot execute $W/bin/auth-verify"; r=$((r + $?))
    chmod 755 "$W/bin/auth-verify"
    return "$r"
}
check "a hook OpenVPN's user cannot execute: the login fails, doctor names the file" t_hook_mode

t_missing_hook() {
    grep -v '^client-disconnect' "$W/good.conf" > "$W/server.conf"
    flagged hooks "has no client-disconnect"
}
check "no client-disconnect line: doctor says usage would not be charged" t_missing_hook

t_database() {
    restart_with "$GOOD"
    chown -R root:root "$W/db"; chmod 755 "$W/db"; chmod 644 "$W/db"/*
    local r=0
    ! login_ok c3 dora pw-doctor-1 >/dev/null || { log "logged in with a read-only database"; r=1; }
    [ "$r" = 0 ] && flagged database-access "nobody:nogroup cannot write $W/db"; r=$((r + $?))
    chown -R nobody:nogroup "$W/db"; chmod 770 "$W/db"; chmod 660 "$W/db"/*
    return "$r"
}
# (The PostgreSQL store's access is the role's: doctor connects as it.)
[ "$STORE" = sqlite ] && check "a database directory OpenVPN's user cannot write: the login fails, doctor gives the chown" t_database

t_config_access() {
    cp "$W/good.conf" "$W/server.conf"
    chmod 600 "$W/tollgate.toml"
    flagged config-access "nobody:nogroup cannot read $W/tollgate.toml"; local r=$?
    chmod 644 "$W/tollgate.toml"
    return "$r"
}
check "a config the hooks cannot read" t_config_access

t_server_record() {
    cp "$W/good.conf" "$W/server.conf"
    sed -i 's/^server = "nl-1"/server = "nl-2"/' "$W/tollgate.toml"
    flagged server-record "server nl-2 is not in the database"; local r=$?
    sed -i 's/^server = "nl-2"/server = "nl-1"/' "$W/tollgate.toml"
    return "$r"
}
check "the server this config names is not on record" t_server_record

t_tmp_dir() {
    cp "$W/good.conf" "$W/server.conf"
    chmod 777 "$W/tmp"
    flagged tmp-dir "not sticky"; local r=$?
    chown root:root "$W/tmp"; chmod 755 "$W/tmp"
    [ "$r" = 0 ] && flagged tmp-dir "nobody:nogroup cannot write tmp-dir $W/tmp"; r=$((r + $?))
    chown nobody:nogroup "$W/tmp"; chmod 755 "$W/tmp"
    return "$r"
}
check "a tmp-dir any local user can swap files in, and one OpenVPN's user cannot write" t_tmp_dir

t_token() {
    conf_with "auth-gen-token 0"
    flagged auth-gen-token "without external-auth"
}
check "auth-gen-token without external-auth" t_token

t_reneg() {
    conf_with "reneg-sec 10"
    flagged reneg-sec "reneg-sec 10 with session tokens"
}
check "reneg-sec 10 with session tokens" t_reneg

t_hand_window() {
    cp "$W/tollgate.toml" "$W/tollgate.toml.bak"
    printf '[post_auth]\ncommand = ["/bin/true"]\ntimeout = "90s"\n' >> "$W/tollgate.toml"
    local r=0
    if [ "${TOLLGATE_E2E_DEFER:-auto}" = auto ]; then
        conf_with "hand-window 60"
        flagged hand-window "[post_auth] timeout allows 90 s"; r=$?
        conf_with "hand-window 120"
        [ "$r" = 0 ] && { clean || r=1; }
    fi
    cp "$W/tollgate.toml.bak" "$W/tollgate.toml"
    return "$r"
}
check "hand-window shorter than the post-auth program may take (deferred)" t_hand_window

t_management() {
    grep -v '^management' "$W/good.conf" > "$W/server.conf"
    flagged management "has no management line"
}
check "no management interface for the sweep" t_management

t_clock() {
    cp "$W/good.conf" "$W/server.conf"
    # A TOTP step used an hour from now: the clock has gone back since.
    db_sql "UPDATE users SET totp_last_step = $(( $(date +%s) / 30 + 120 )) WHERE name = 'dora'"
    flagged clock "TOTP codes are refused"; local r=$?
    db_sql "UPDATE users SET totp_last_step = NULL"
    return "$r"
}
check "a clock behind the database's newest record" t_clock

t_back_to_clean() {
    restart_with "$GOOD"
    login_ok c4 dora pw-doctor-1 && clean
}
check "everything put back: the login works and doctor is clean again" t_back_to_clean

summary
