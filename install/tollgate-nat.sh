#!/bin/sh
# tollgate's forwarding and NAT for an OpenVPN subnet (installed as
# /usr/local/libexec/tollgate/nat; run by tollgate-nat@NAME.service and
# by install.sh --setup-server).
#   nat up SUBNET IFACE     enable IPv4 forwarding, masquerade SUBNET out of IFACE
#   nat down SUBNET IFACE   remove those rules (forwarding stays on)
# Idempotent: `up` adds only missing rules and prints one line per rule it
# added; `down` removes every copy. Rules carry the comment "tollgate".
set -eu
[ $# -eq 3 ] || { echo "usage: nat up|down SUBNET IFACE" >&2; exit 2; }
action=$1 subnet=$2 iface=$3
command -v iptables >/dev/null || { echo "nat: iptables not found (apt-get install iptables)" >&2; exit 1; }

# table chain position rule...: the rules, one per line, for both actions.
rules() {
    echo "nat POSTROUTING A -s $subnet -o $iface -j MASQUERADE"
    echo "filter FORWARD I -s $subnet -i tun+ -o $iface -j ACCEPT"
    echo "filter FORWARD I -d $subnet -i $iface -o tun+ -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
}

# Forwarding first: if it cannot be enabled, no rule is added either.
if [ "$action" = up ] && [ "$(sysctl -n net.ipv4.ip_forward)" != 1 ]; then
    sysctl -q -w net.ipv4.ip_forward=1
    echo "enabled net.ipv4.ip_forward"
fi

rules | while read -r table chain where rule; do
    # shellcheck disable=SC2086
    case $action in
        up)
            if ! iptables -w -t "$table" -C "$chain" $rule -m comment --comment tollgate 2>/dev/null; then
                if [ "$where" = I ]; then pos=1; else pos=; fi
                if [ -n "$pos" ]; then
                    iptables -w -t "$table" -I "$chain" 1 $rule -m comment --comment tollgate
                else
                    iptables -w -t "$table" -A "$chain" $rule -m comment --comment tollgate
                fi
                echo "added iptables -t $table $chain $rule"
            fi ;;
        down)
            while iptables -w -t "$table" -C "$chain" $rule -m comment --comment tollgate 2>/dev/null; do
                iptables -w -t "$table" -D "$chain" $rule -m comment --comment tollgate
            done ;;
        *) echo "nat: up or down, not $action" >&2; exit 2 ;;
    esac
done
