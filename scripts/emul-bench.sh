#!/bin/bash
# The emulator's sessions per second against the real server's (stage 4 of issue 13), in the
# same run: starts nginx, Apache, Postfix, Exim, vsftpd and ProFTPD on loopback
# (scripts/emul-servers.sh), scans each (printing the personality's size), runs one farm
# emulating them all on other ports while the real servers keep running, and prints
# `honeyfarm personality bench` for each (interleaved rounds, bounded in sessions). The IIS
# personality has no real server: it is measured against nginx. Run under the emulation
# tests' lock: flock /tmp/honeyfarm-emul-tests.lock scripts/emul-bench.sh [BINARY [SESSIONS]]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/honeyfarm}
n=${2:-300}
work=$(mktemp -d /tmp/hfe-bench.XXXXXX)
chmod 755 "$work" # the servers' own users (postfix, ftp) reach their directories
farm_pid=
# server real-port emulated-port protocol; none among the FTP servers' passive ports (the 20
# above their own)
servers="nginx 18580 18581 http
apache 18590 18591 http
postfix 18555 18556 smtp
exim 18565 18566 smtp
vsftpd 18521 18550 ftp
proftpd 18600 18622 ftp"
cleanup() {
    [ -n "$farm_pid" ] && kill "$farm_pid" 2>/dev/null && wait "$farm_pid" 2>/dev/null
    echo "$servers" | while read -r s _ _ _; do
        scripts/emul-servers.sh stop "$s" "$work/$s" || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/scripts"
# One farm emulating them all. Its scan filter is off: it answers each source's first 4
# (address, port) pairs only, and every bench session comes from 127.0.0.1, so with it on the
# fifth and later personalities would see every connection reset.
printf '[events]\npath = "%s"\n[scripts]\ndirs = ["%s"]\n[filter]\nenabled = false\n' \
    "$work/events.sqlite" "$work/scripts" >"$work/farm.toml"
listen() {
    printf '[[listen]]\naddress = "127.0.0.1:%s"\nservice = "%s"\nresponder = "emulate"\npersonality = "%s"\n' \
        "$1" "$2" "$3" >>"$work/farm.toml"
}
while read -r s real emu proto; do
    scripts/emul-servers.sh start "$s" "$work/$s" "$real"
    "$bin" personality scan "$proto" "127.0.0.1:$real" --out "$work/$s.toml" --quiet
    listen "$emu" "$proto" "$work/$s.toml"
done <<<"$servers"
listen 18582 http config/personalities/iis-5.0.toml
# sed, not head: head exits early, `show` dies of SIGPIPE and pipefail ends the script.
"$bin" personality show config/personalities/iis-5.0.toml | sed -n 1p
"$bin" run --config "$work/farm.toml" 2>"$work/farm.log" &
farm_pid=$!
sleep 1
while read -r s real emu proto; do
    echo "== $s"
    "$bin" personality bench "$proto" --real "127.0.0.1:$real" --emulated "127.0.0.1:$emu" --sessions "$n"
done <<<"$servers"
echo "== iis (against nginx)"
"$bin" personality bench http --real 127.0.0.1:18580 --emulated 127.0.0.1:18582 --sessions "$n"
