#!/usr/bin/env bash
# Tests for the example post-auth programs in this directory.
# Needs bash and python3 only; runs in a few seconds:  bash examples/post-auth/test.sh
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Resolve the interpreter once: version-manager shims (pyenv) cost ~50 ms a
# call. The helpers below run it with -S (no site packages) to start faster.
PY=$(python3 -c 'import sys; print(sys.executable)')
T=$(mktemp -d)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT

passed=0
failed=0
OUT=""
RC=0

# input KEY=VALUE... : print a post-auth input object. Keys: user, status,
# method, ip, hw, password, saved (JSON), group, reauth (true/false), and
# IV_*/UV_* for client_info.
input() {
    "$PY" -S - "$@" <<'PY'
import json, sys
kv = dict(arg.split("=", 1) for arg in sys.argv[1:])
user = kv.get("user", "alice")
authcred = {"username": user, "client_ip_addr": kv.get("ip", "10.0.0.2")}
if "hw" in kv:
    authcred["client_hw_addr"] = kv["hw"]
if "password" in kv:
    authcred["password"] = kv["password"]
client_info = {"IV_PLAT": "linux", "IV_VER": "2.6.14"}
client_info.update({k: v for k, v in kv.items() if k.startswith(("IV_", "UV_"))})
print(json.dumps({
    "authcred": authcred,
    "attributes": {"client_info": client_info, "vpn_auth": True,
                   "reauth": kv.get("reauth", "false") == "true"},
    "authret": {"status": kv.get("status", "SUCCEED"), "user": user,
                "reason": "password ok", "group": kv.get("group")},
    "info": {"auth_method": kv.get("method", "local"), "server": "nl-1", "plan": "basic",
             "groups": ["staff"], "saved": json.loads(kv.get("saved", "{}"))},
}))
PY
}

# run PROGRAM INPUT ARGS... : run an example, leaving its stdout in OUT and exit code in RC.
run() {
    local prog=$1 in=$2
    shift 2
    RC=0
    OUT=$("$PY" "$HERE/$prog" "$@" <<<"$in") || RC=$?
}

# holds JSON PYTHON-EXPRESSION : true if JSON is an object for which the
# expression (with the object as o) is true.
holds() {
    "$PY" -S -c '
import json, sys
o = json.loads(sys.argv[1])
sys.exit(0 if isinstance(o, dict) and eval(sys.argv[2]) else 1)
' "$1" "$2" 2>/dev/null
}

# expect DESCRIPTION PYTHON-EXPRESSION : check the last run: exit 0, one JSON
# object with a valid status, and the expression true for it (as o).
expect() {
    local desc=$1 expr=$2
    if [[ $RC -eq 0 ]] && holds "$OUT" "o.get('status') in ('SUCCEED', 'FAIL') and ($expr)"; then
        echo "ok   $desc"
        passed=$((passed + 1))
    else
        echo "FAIL $desc"
        echo "     exit $RC, output: $OUT"
        echo "     expected: $expr"
        failed=$((failed + 1))
    fi
}

# check DESCRIPTION COMMAND... : a plain shell check.
check() {
    local desc=$1
    shift
    if "$@"; then
        echo "ok   $desc"
        passed=$((passed + 1))
    else
        echo "FAIL $desc"
        failed=$((failed + 1))
    fi
}

for prog in group-map hwaddr-allow push-approve; do
    check "$prog: executable, #!/usr/bin/env python3" \
        eval '[[ -x $HERE/$prog && $(head -n 1 "$HERE/$prog") == "#!/usr/bin/env python3" ]]'
done

# ---------------------------------------------------------------- group-map
cat >"$T/rules" <<'RULES'
# test rules
user   admin-*   admins

client IV_PLAT   android   mobile
client UV_DEPT   sales*    sales
RULES
{ cat "$T/rules"; echo "default staff"; } >"$T/rules-default"
printf 'user alice\n' >"$T/rules-bad"

run group-map "$(input user=admin-bob password=s3cret-pw)" --rules "$T/rules"
expect "group-map: user rule" 'o["status"] == "SUCCEED" and o["group"] == "admins"'
expect "group-map: password never printed" '"s3cret-pw" not in json.dumps(o)'

run group-map "$(input IV_PLAT=android)" --rules "$T/rules"
expect "group-map: client rule (IV_PLAT)" 'o["status"] == "SUCCEED" and o["group"] == "mobile"'

run group-map "$(input UV_DEPT=sales-emea)" --rules "$T/rules"
expect "group-map: client rule (UV_DEPT)" 'o["group"] == "sales"'

run group-map "$(input)" --rules "$T/rules-default"
expect "group-map: default" 'o["status"] == "SUCCEED" and o["group"] == "staff"'

run group-map "$(input)" --rules "$T/rules"
expect "group-map: no match keeps no group" 'o == {"status": "SUCCEED"}'

run group-map "$(input user=admin-bob status=FAIL)" --rules "$T/rules-default"
expect "group-map: FAIL stays FAIL" 'o == {"status": "FAIL"}'

run group-map "$(input user=admin-bob status=FAIL method=program)" --rules "$T/rules"
expect "group-map: program user (FAIL) stays FAIL" 'o == {"status": "FAIL"}'

run group-map "$(input)" --rules "$T/rules-bad"
expect "group-map: bad rule file fails closed" \
    'o["status"] == "FAIL" and o["client_reason"] == "server configuration error" and "line 1" in o["reason"]'

run group-map "$(input)" --rules "$T/no-such-file"
expect "group-map: missing rule file fails closed" \
    'o["status"] == "FAIL" and o["client_reason"] == "server configuration error" and "no-such-file" in o["reason"]'

run group-map "not json" --rules "$T/rules"
expect "group-map: invalid input JSON -> FAIL" 'o["status"] == "FAIL" and "\n" not in o["reason"]'

run group-map "$(input)"
expect "group-map: missing --rules -> FAIL" 'o["status"] == "FAIL" and "--rules" in o["reason"]'

# ------------------------------------------------------------- hwaddr-allow
cat >"$T/allow" <<'ALLOW'
# office laptops
00:11:22:33:44:55
AA-BB-CC-DD-EE-FF
# a phone whose client sends a UUID
6F9619FF-8B86-D011-B42D-00C04FC964FF
ALLOW

run hwaddr-allow "$(input hw=00:11:22:33:44:55)" --allow "$T/allow"
expect "hwaddr-allow: allowed" 'o["status"] == "SUCCEED" and "save" not in o'

run hwaddr-allow "$(input hw=aa:bb:cc:dd:ee:ff)" --allow "$T/allow"
expect "hwaddr-allow: case and separators normalised" 'o["status"] == "SUCCEED"'

run hwaddr-allow "$(input hw=6f9619ff-8b86-d011-b42d-00c04fc964ff)" --allow "$T/allow"
expect "hwaddr-allow: non-MAC id (UUID) compared as is" 'o["status"] == "SUCCEED"'

run hwaddr-allow "$(input hw='00:11:22 33:44:55')" --allow "$T/allow"
expect "hwaddr-allow: malformed address refused" 'o["status"] == "FAIL" and "malformed" in o["reason"]'

run hwaddr-allow "$(input hw=00:11:22:33:44:66)" --allow "$T/allow"
expect "hwaddr-allow: refused" \
    'o["status"] == "FAIL" and o["client_reason"] == "this device is not allowed for your account" and "00:11:22:33:44:66" in o["reason"]'

run hwaddr-allow "$(input)" --allow "$T/allow"
expect "hwaddr-allow: missing address" 'o["status"] == "FAIL" and "push-peer-info" in o["client_reason"]'

run hwaddr-allow "$(input hw=00:11:22:33:44:55 status=FAIL)" --allow "$T/allow"
expect "hwaddr-allow: FAIL stays FAIL" 'o == {"status": "FAIL"}'

run hwaddr-allow "$(input hw=00:11:22:33:44:55)" --allow "$T/no-such-file"
expect "hwaddr-allow: missing allow file fails closed" \
    'o["status"] == "FAIL" and o["client_reason"] == "server configuration error"'

run hwaddr-allow "$(input hw=00:11:22:33:44:55)"
expect "hwaddr-allow: no --allow and no --learn -> FAIL" 'o["status"] == "FAIL"'

run hwaddr-allow "$(input hw=02-00-00-00-00-01)" --learn
expect "hwaddr-allow --learn: first login saves the address" \
    'o["status"] == "SUCCEED" and o["save"] == {"hwaddr": "02:00:00:00:00:01"}'
SAVED=$("$PY" -S -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1])["save"]))' "$OUT")

run hwaddr-allow "$(input hw=02:00:00:00:00:01 saved="$SAVED")" --learn
expect "hwaddr-allow --learn: saved address matches" 'o["status"] == "SUCCEED" and "save" not in o'

run hwaddr-allow "$(input hw=02:00:00:00:00:02 saved="$SAVED")" --learn
expect "hwaddr-allow --learn: other address refused" \
    'o["status"] == "FAIL" and o["client_reason"] == "this device is not allowed for your account" and "02:00:00:00:00:02" in o["reason"]'

run hwaddr-allow "$(input hw=00:11:22:33:44:55 saved="$SAVED")" --learn --allow "$T/allow"
expect "hwaddr-allow --learn --allow: allow file still applies" 'o["status"] == "SUCCEED"'

# ------------------------------------------------------------- push-approve
# approver DIR VERDICT : wait for a request in DIR/pending, copy it to
# $T/seen.json, and after 0.5 s answer it in DIR/VERDICT.
approver() {
    local dir=$1 verdict=$2 f i
    for i in $(seq 50); do
        for f in "$dir"/pending/*; do
            if [[ -f $f ]]; then
                cp "$f" "$T/seen.json"
                stat -c %a "$f" >"$T/seen.mode"
                sleep 0.5
                echo "$verdict by test" >"$dir/$verdict/${f##*/}"
                return 0
            fi
        done
        sleep 0.1
    done
    return 1
}
# empty DIR : true if DIR has no entries at all (dot files included).
empty() { [[ -z $(ls -A "$1") ]]; }

A=$T/approvals
approver "$A" approved &
PIDS+=($!)
start=$SECONDS
run push-approve "$(input user=alice ip=10.0.0.7)" --dir "$A" --timeout 5
expect "push-approve: approved" 'o["status"] == "SUCCEED" and "approved by test" in o["reason"]'
check "push-approve: answered before the timeout" test $((SECONDS - start)) -lt 4
check "push-approve: request file is mode 0600" test "$(cat "$T/seen.mode")" = 600
check "push-approve: request has user, client_ip, server, time" holds "$(cat "$T/seen.json")" \
    'o["user"] == "alice" and o["client_ip"] == "10.0.0.7" and o["server"] == "nl-1" and o["time"]'
check "push-approve: directories are mode 0700" \
    test "$(stat -c %a "$A" "$A/pending" "$A/approved" "$A/denied" | sort -u)" = 700
check "push-approve: files removed after approval" \
    eval 'empty "$A/pending" && empty "$A/approved" && empty "$A/denied"'

approver "$A" denied &
PIDS+=($!)
run push-approve "$(input user=alice)" --dir "$A" --timeout 5
expect "push-approve: denied" 'o["status"] == "FAIL" and o["client_reason"] == "login was denied"'
check "push-approve: files removed after denial" \
    eval 'empty "$A/pending" && empty "$A/approved" && empty "$A/denied"'

run push-approve "$(input user=alice)" --dir "$A" --timeout 1
expect "push-approve: timeout" 'o["status"] == "FAIL" and o["client_reason"] == "login not approved in time"'
check "push-approve: request removed after timeout" empty "$A/pending"

run push-approve "$(input user=alice status=FAIL)" --dir "$T/untouched" --timeout 5
expect "push-approve: FAIL input passed through" 'o == {"status": "FAIL"}'
check "push-approve: FAIL input writes nothing" test ! -e "$T/untouched"

run push-approve "$(input user=alice reauth=true)" --dir "$T/untouched" --timeout 5 --skip-reauth
expect "push-approve --skip-reauth: renegotiation not asked" 'o == {"status": "SUCCEED"}'

run push-approve "$(input)" --dir "$A" --timeout 0
expect "push-approve: bad --timeout -> FAIL" 'o["status"] == "FAIL" and "--timeout" in o["reason"]'

wait
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
