#!/usr/bin/env bash
# The fidelity matrix's network (tests/fidelity.rs): two namespaces joined by a veth pair
# (scripts/netns-pair.sh), nothing routed out, so the farm and a standalone honeypot can both
# use ports 445 and 139.
#
#   hfm-cli  the attacker: 192.0.2.1/24 on hfm-cli0
#   hfm-srv  the servers: 192.0.2.2 (the farm, a telescope address) and 192.0.2.3 (a
#            standalone honeypot) on hfm-srv0; the farm's own honeypots on its loopback
#
# Needs root (CAP_NET_ADMIN).   usage: netns.sh up|down
set -euo pipefail
PAIR="$(dirname "$0")/../../scripts/netns-pair.sh"

case "${1:-}" in
up) "$PAIR" up hfm-cli hfm-srv --addr1 192.0.2.1/24 --addr2 192.0.2.2/24 --addr2 192.0.2.3/24 ;;
down) "$PAIR" down hfm-cli hfm-srv ;;
*)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
