#!/usr/bin/env bash
# Two network namespaces joined by a veth pair (NS1's end NS1"0", NS2's end NS2"0"), loopback
# up in both, each end with the given addresses and routes; nothing else, so no packet leaves
# them. What the testbed (scripts/testbed.sh) and the fidelity matrix (tests/fidelity/netns.sh)
# build their networks from. Needs root (CAP_NET_ADMIN).
#
#   netns-pair.sh up NS1 NS2 [--addr1 ADDR/LEN]... [--addr2 ADDR/LEN]...
#                            [--route1 'ROUTE ARGS']... [--route2 'ROUTE ARGS']...
#       create (after removing leftovers of the same names); routes are `ip route add` arguments
#   netns-pair.sh down NS1 NS2
#       remove both, killing what runs in them; idempotent
set -euo pipefail

usage() {
    sed -n '7,11p' "$0" | sed 's/^# \{0,3\}//' >&2
    exit 2
}

down() {
    # Deleting a namespace removes its end of the veth pair, and with it the other end.
    for ns in "$@"; do
        if ip netns list | grep -qw "^$ns"; then
            ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
            ip netns del "$ns"
        fi
    done
}

up() {
    local ns1=$1 ns2=$2
    shift 2
    local addr1=() addr2=() route1=() route2=()
    while (($#)); do
        (($# >= 2)) || usage
        case "$1" in
        --addr1) addr1+=("$2") ;;
        --addr2) addr2+=("$2") ;;
        --route1) route1+=("$2") ;;
        --route2) route2+=("$2") ;;
        *) usage ;;
        esac
        shift 2
    done
    down "$ns1" "$ns2"
    ip netns add "$ns1"
    ip netns add "$ns2"
    ip link add "${ns1}0" netns "$ns1" type veth peer name "${ns2}0" netns "$ns2"
    local a r
    for ns in "$ns1" "$ns2"; do
        ip -n "$ns" link set lo up
    done
    for a in "${addr1[@]}"; do ip -n "$ns1" addr add "$a" dev "${ns1}0"; done
    for a in "${addr2[@]}"; do ip -n "$ns2" addr add "$a" dev "${ns2}0"; done
    ip -n "$ns1" link set "${ns1}0" up
    ip -n "$ns2" link set "${ns2}0" up
    # Routes last: a route via the other end needs its link up. Split into words on purpose.
    for r in "${route1[@]}"; do ip -n "$ns1" route add $r; done
    for r in "${route2[@]}"; do ip -n "$ns2" route add $r; done
}

(($# >= 3)) || usage
case "$1" in
up) up "${@:2}" ;;
down) (($# == 3)) || usage; down "$2" "$3" ;;
*) usage ;;
esac
