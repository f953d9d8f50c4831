# A throwaway FreeRADIUS 3.2 server for tests. Sourced; needs Debian's
# freeradius, and radclient (freeradius-utils) for the start-up probe. Its
# config, users file, log and pid file live under DIR; it reads nothing in
# /etc/freeradius and runs as the invoking user (no privilege drop).
#
#   radiusd_prepare DIR PORT SECRET    DIR/raddb: one auth listener on
#                                      127.0.0.1:PORT (UDP), one client
#                                      127.0.0.1 with SECRET whose requests
#                                      must carry a Message-Authenticator
#                                      (others are dropped unanswered); no
#                                      reject delay; sets RADIUSD_PORT and
#                                      RADIUSD_SECRET. Answers carry a
#                                      Message-Authenticator unless
#                                      RADIUSD_SIGN=no (3.2.1 leaves it out
#                                      unless told)
#   radius_user DIR NAME PASSWORD [REPLY_ITEM...]
#                                      a PAP user; the reply items, in users
#                                      file syntax, go in its Access-Accept:
#                                      'Class := "eng"' 'Framed-IP-Address := 10.8.0.50'
#   radius_challenge_user DIR NAME PASSWORD CODE [REPLY_ITEM...]
#                                      the right PASSWORD gets an Access-Challenge
#                                      (only Reply-Message $RADIUS_CHALLENGE_MESSAGE
#                                      and a State); the next request with that
#                                      State and User-Password CODE gets the
#                                      Access-Accept with the reply items. A wrong
#                                      password, code or State gets a reject and
#                                      a State is good for one answer only.
#   radiusd_start DIR [FREERADIUS_ARG...]
#                                      start it as a background job (its pid in
#                                      RADIUSD_PID), wait until it answers a
#                                      Status-Server (10 s at most); extra
#                                      arguments such as -xx (debug log)
#   radiusd_stop                       kill it and wait until it is gone
#
# NAME, PASSWORD and CODE are taken literally (no %{...} expansion); NAME
# and SECRET must not have a backslash at the end or before a quote.
# Access-Rejects carry no attributes.
# Add users before radiusd_start, or send the server a SIGHUP to re-read the
# users file (it ignores a HUP less than 5 s after the previous one).
# RADIUSD_PIDFILE is where the server writes its pid: radiusd_prepare sets
# it to DIR/radiusd.pid unless it is already set (lib.sh's cleanup kills
# "$W"/*.pid); radiusd_stop removes it, the server does not.
# RADIUSD_NETNS, if set, runs the server and the probe in that network
# namespace (ip netns exec). The log is DIR/radius.log.

. "$(dirname "${BASH_SOURCE[0]}")/daemon.sh"

RADIUS_CHALLENGE_MESSAGE="Enter the code sent to your phone"

radiusd_prepare() {
    local dir=$1 port=$2 secret=$3 raddb=$1/raddb sign=""
    # FreeRADIUS 3.2.1 signs its answers only when told to.
    [ "${RADIUSD_SIGN:-yes}" = yes ] && sign="update reply {
				&Message-Authenticator := 0x00
			}"
    RADIUSD_PORT=$port RADIUSD_SECRET=$secret RADIUSD_PIDFILE=${RADIUSD_PIDFILE:-$dir/radiusd.pid}
    mkdir -p "$raddb" || return 1
    : > "$raddb/users"
    # Attributes internal to the server (3000-3999: never sent in a packet).
    cat > "$raddb/dictionary" <<'DICT'
ATTRIBUTE	Tollgate-Otp-Code	3000	string
ATTRIBUTE	Tollgate-Otp-Stage	3001	string
DICT
    cat > "$raddb/radiusd.conf" <<CONF
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
libdir = /usr/lib/freeradius
name = freeradius
raddbdir = $raddb
confdir = $raddb
modconfdir = $raddb
logdir = $dir
run_dir = $dir
radacctdir = $dir
db_dir = $dir
pidfile = $RADIUSD_PIDFILE
max_request_time = 10
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {
	destination = files
	file = $dir/radius.log
	colourise = no
	auth = yes
	auth_badpass = no
	auth_goodpass = no
}
security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}
thread pool {
	start_servers = 2
	max_servers = 4
	min_spare_servers = 1
	max_spare_servers = 4
	max_requests_per_server = 0
}
client local {
	ipaddr = 127.0.0.1
	secret = $(radius_quote_name "$secret")
	require_message_authenticator = yes
	nas_type = other
}
modules {
	files {
		filename = $raddb/users
	}
	pap {
	}
	always reject {
		rcode = reject
	}
	always handled {
		rcode = handled
	}
}
server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $port
		proto = udp
	}
	authorize {
		files
		if (!&control:Cleartext-Password) {
			reject
		}
		elsif (!&control:Tollgate-Otp-Code) {
			pap
		}
		elsif (&State) {
			# Our State, still open, brings back the session-state
			# list; it is gone after an Access-Accept or -Reject.
			if (&session-state:Tollgate-Otp-Stage && &User-Password == &control:Tollgate-Otp-Code) {
				update control {
					&Auth-Type := Accept
				}
			}
			else {
				update control {
					&Auth-Type := Reject
				}
			}
		}
		elsif (&User-Password == &control:Cleartext-Password) {
			update {
				&reply: !* ANY
			}
			update reply {
				&Reply-Message := "$RADIUS_CHALLENGE_MESSAGE"
			}
			update session-state {
				&Tollgate-Otp-Stage := "code"
			}
			update control {
				&Response-Packet-Type := Access-Challenge
			}
			$sign
			handled
		}
		else {
			update control {
				&Auth-Type := Reject
			}
		}
	}
	authenticate {
		Auth-Type PAP {
			pap
		}
	}
	post-auth {
		$sign
		Post-Auth-Type REJECT {
			update {
				&reply: !* ANY
			}
			$sign
		}
	}
}
CONF
}

# radius_quote VALUE: a single-quoted attribute value for the users file,
# literal (no %{...} expansion).
radius_quote() {
    local s=${1//\\/\\\\}
    printf "'%s'" "${s//\'/\\\'}"
}

# radius_quote_name WORD: single-quoted for the config parser, which keeps
# backslashes but for one before a quote (user names, the secret).
radius_quote_name() {
    printf "'%s'" "${1//\'/\\\'}"
}

# radius_entry DIR NAME CHECK_ITEMS [REPLY_ITEM...]
radius_entry() {
    local users=$1/raddb/users name=$2 check=$3 sep=""
    shift 3
    {
        printf '%s\t%s\n' "$(radius_quote_name "$name")" "$check"
        for item; do printf '%s\t%s' "$sep" "$item"; sep=$',\n'; done
        if [ -n "$sep" ]; then printf '\n\n'; else printf '\n'; fi
    } >> "$users"
}

radius_user() {
    local dir=$1 name=$2 pw=$3
    shift 3
    radius_entry "$dir" "$name" "Cleartext-Password := $(radius_quote "$pw")" "$@"
}

radius_challenge_user() {
    local dir=$1 name=$2 pw=$3 code=$4
    shift 4
    radius_entry "$dir" "$name" \
        "Cleartext-Password := $(radius_quote "$pw"), Tollgate-Otp-Code := $(radius_quote "$code")" "$@"
}

# radiusd_in COMMAND...: run it in RADIUSD_NETNS, if set.
radiusd_in() {
    if [ -n "${RADIUSD_NETNS:-}" ]; then ip netns exec "$RADIUSD_NETNS" "$@"; else "$@"; fi
}

# radiusd_bound: something listens on RADIUSD_PORT.
radiusd_bound() {
    radiusd_in ss -Hlun "sport = :$RADIUSD_PORT" | grep -q .
}

# radiusd_probe DIR: a Status-Server gets an answer.
radiusd_probe() {
    printf 'Message-Authenticator = 0x00\n' |
        radiusd_in radclient -d "$1/raddb" -q -r 1 -t 0.5 "127.0.0.1:$RADIUSD_PORT" status "$RADIUSD_SECRET" \
            >/dev/null 2>&1
}

radiusd_start() {
    local dir=$1 cmd deadline=$((SECONDS + 10))
    shift
    # A second server binds the same UDP port without complaint, and the
    # probe would get its answer from the first.
    if radiusd_bound; then
        echo "freeradius: UDP port $RADIUSD_PORT is already in use" >&2
        return 1
    fi
    # -f: no fork, so RADIUSD_PID is the server; -P: a pid file all the same.
    cmd=(/usr/sbin/freeradius -f -P -d "$dir/raddb" -l stdout "$@")
    [ -n "${RADIUSD_NETNS:-}" ] && cmd=(ip netns exec "$RADIUSD_NETNS" "${cmd[@]}")
    "${cmd[@]}" >> "$dir/radius.log" 2>&1 &
    RADIUSD_PID=$!
    # Probe once the socket is there: a probe sent before is lost and
    # radclient would wait its whole timeout.
    daemon_await freeradius "$RADIUSD_PID" "$dir/radius.log" "$deadline" radiusd_ready "$dir" && return 0
    radiusd_stop
    return 1
}

radiusd_ready() { radiusd_bound && radiusd_probe "$1"; }

radiusd_stop() {
    [ -n "${RADIUSD_PID:-}" ] || return 0
    daemon_stop "$RADIUSD_PID"
    rm -f "${RADIUSD_PIDFILE:-}"
    RADIUSD_PID=
}
