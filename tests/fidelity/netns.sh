#!/usr/bin/env bash
# The fidelity matrix's network (tests/fidelity.rs): two namespaces joined by a veth pair,
# nothing routed out, so the farm and a standalone honeypot can both use ports 445 and 139.
#
#   hfm-cli  the attacker: 192.0.2.1/24 on hfm-cli0
#   hfm-srv  the servers: 192.0.2.2 (the farm, a telescope address) and 192.0.2.3 (a
#            standalone honeypot) on hfm-srv0; the farm's own honeypots on its loopback
#
# Needs root (CAP_NET_ADMIN).   usage: netns.sh up|down
set -euo pipefail
CLI=hfm-cli
SRV=hfm-srv

down() {
    for ns in "$CLI" "$SRV"; do
        if ip netns list | grep -qw "^$ns"; then
            ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
            ip netns del "$ns"
        fi
    done
}

up() {
    down
    ip netns add "$CLI"
    ip netns add "$SRV"
    ip link add hfm-cli0 netns "$CLI" type veth peer name hfm-srv0 netns "$SRV"
    ip -n "$CLI" link set lo up
    ip -n "$SRV" link set lo up
    ip -n "$CLI" addr add 192.0.2.1/24 dev hfm-cli0
    ip -n "$SRV" addr add 192.0.2.2/24 dev hfm-srv0
    ip -n "$SRV" addr add 192.0.2.3/24 dev hfm-srv0
    ip -n "$CLI" link set hfm-cli0 up
    ip -n "$SRV" link set hfm-srv0 up
}

case "${1:-}" in
up) up ;;
down) down ;;
*)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
