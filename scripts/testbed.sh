#!/usr/bin/env bash
# The network testbed: two network namespaces joined by a veth pair, nothing routed out.
#
#   hf-scan  the scanner host: 192.0.2.1/30 on hf-scan0, plus source addresses
#            203.0.113.10-.19/32; 198.18.0.0/24 routed via 192.0.2.2.
#   hf-farm  the farm host: 192.0.2.2/30 on hf-farm0; 198.18.0.0/24 routed local
#            (`ip route add local 198.18.0.0/24 dev lo`, "AnyIP"); 203.0.113.0/24 routed back
#            via 192.0.2.1.
#
# Neither namespace has a default route, so no packet leaves them. Needs root (CAP_NET_ADMIN).
#   scripts/testbed.sh up     create (after removing any leftover)
#   scripts/testbed.sh down   remove everything; idempotent
set -euo pipefail

SCAN=hf-scan
FARM=hf-farm
PREFIX=198.18.0.0/24
SOURCES=(203.0.113.10 203.0.113.11 203.0.113.12 203.0.113.13 203.0.113.14
    203.0.113.15 203.0.113.16 203.0.113.17 203.0.113.18 203.0.113.19)

down() {
    # Deleting a namespace removes its end of the veth pair, and with it the other end.
    for ns in "$SCAN" "$FARM"; do
        if ip netns list | grep -qw "^$ns"; then
            ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
            ip netns del "$ns"
        fi
    done
}

up() {
    down
    ip netns add "$SCAN"
    ip netns add "$FARM"
    ip link add hf-scan0 netns "$SCAN" type veth peer name hf-farm0 netns "$FARM"
    local s=(ip -n "$SCAN") f=(ip -n "$FARM")
    "${s[@]}" link set lo up
    "${f[@]}" link set lo up
    "${s[@]}" addr add 192.0.2.1/30 dev hf-scan0
    "${f[@]}" addr add 192.0.2.2/30 dev hf-farm0
    for a in "${SOURCES[@]}"; do
        "${s[@]}" addr add "$a/32" dev hf-scan0
    done
    "${s[@]}" link set hf-scan0 up
    "${f[@]}" link set hf-farm0 up
    "${s[@]}" route add "$PREFIX" via 192.0.2.2 dev hf-scan0 src "${SOURCES[0]}"
    "${f[@]}" route add local "$PREFIX" dev lo
    "${f[@]}" route add 203.0.113.0/24 via 192.0.2.1 dev hf-farm0
    # The scanner's replies to its own source addresses need no forwarding: they are its own.
    echo "testbed up: $SCAN (sources ${SOURCES[0]}-${SOURCES[-1]}) -> $FARM ($PREFIX local)"
}

case "${1:-}" in
up) up ;;
down) down ;;
*)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
