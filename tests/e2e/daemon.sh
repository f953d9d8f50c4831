# What the throwaway test servers (radiusd.sh, oidcd.sh) share. Sourced.
#
#   daemon_stop PID    TERM, up to 5 s to go, then KILL; reaps it when it is
#                      this shell's job

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
