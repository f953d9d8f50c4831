# What the throwaway test servers (radiusd.sh, oidcd.sh) share. Sourced.
#
#   daemon_await NAME PID LOG DEADLINE CMD...
#                      wait, while PID lives and until $SECONDS reaches
#                      DEADLINE, for CMD to succeed; else print LOG's last
#                      lines and fail
#   daemon_stop PID    TERM, up to 5 s to go, then KILL; reaps it when it is
#                      this shell's job

daemon_await() {
    local name=$1 pid=$2 log=$3 deadline=$4
    shift 4
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        "$@" && return 0
        sleep 0.05
    done
    echo "$name did not start; last lines of $log:" >&2
    tail -n 20 "$log" | sed 's/^/    | /' >&2
    return 1
}

daemon_stop() {
    local pid=$1 i
    kill "$pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    wait "$pid" 2>/dev/null
}
