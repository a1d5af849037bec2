#!/usr/bin/env bash
# The network testbed: two network namespaces joined by a veth pair (scripts/netns-pair.sh),
# nothing routed out.
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

PAIR="$(dirname "$0")/netns-pair.sh"

up() {
    local args=(--addr1 192.0.2.1/30 --addr2 192.0.2.2/30) a
    for a in "${SOURCES[@]}"; do
        args+=(--addr1 "$a/32")
    done
    args+=(--route1 "$PREFIX via 192.0.2.2 dev ${SCAN}0 src ${SOURCES[0]}")
    args+=(--route2 "local $PREFIX dev lo" --route2 "203.0.113.0/24 via 192.0.2.1 dev ${FARM}0")
    "$PAIR" up "$SCAN" "$FARM" "${args[@]}"
    # The scanner's replies to its own source addresses need no forwarding: they are its own.
    echo "testbed up: $SCAN (sources ${SOURCES[0]}-${SOURCES[-1]}) -> $FARM ($PREFIX local)"
}

case "${1:-}" in
up) up ;;
down) "$PAIR" down "$SCAN" "$FARM" ;;
*)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
