#!/bin/bash
# The emulator's sessions per second against the real server's (stage 4 of issue 13), in the
# same run: starts nginx, Postfix and vsftpd on loopback (scripts/emul-servers.sh), scans each, runs a
# farm emulating them on other ports while the real servers keep running, and prints
# `honeyfarm personality bench` for each (interleaved rounds, bounded in sessions). Run under
# the shared lock: flock /tmp/honeyfarm-peer-tests.lock scripts/emul-bench.sh [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/honeyfarm}
work=$(mktemp -d /tmp/hfe-bench.XXXXXX)
chmod 755 "$work" # the servers' own users (postfix, ftp) reach their directories
farm_pid=
cleanup() {
    [ -n "$farm_pid" ] && kill "$farm_pid" 2>/dev/null && wait "$farm_pid" 2>/dev/null
    scripts/emul-servers.sh stop nginx "$work/nginx" || true
    scripts/emul-servers.sh stop postfix "$work/postfix" || true
    scripts/emul-servers.sh stop vsftpd "$work/vsftpd" || true
    rm -rf "$work"
}
trap cleanup EXIT
scripts/emul-servers.sh start nginx "$work/nginx" 18580
scripts/emul-servers.sh start postfix "$work/postfix" 18525
scripts/emul-servers.sh start vsftpd "$work/vsftpd" 18521
"$bin" personality scan http 127.0.0.1:18580 --out "$work/nginx.toml" --quiet
"$bin" personality scan smtp 127.0.0.1:18525 --out "$work/postfix.toml" --quiet
"$bin" personality scan ftp 127.0.0.1:18521 --out "$work/vsftpd.toml" --quiet
mkdir -p "$work/scripts"
cat >"$work/farm.toml" <<CONF
[events]
path = "$work/events.sqlite"
[scripts]
dirs = ["$work/scripts"]
[[listen]]
address = "127.0.0.1:18581"
service = "http"
responder = "emulate"
personality = "$work/nginx.toml"
[[listen]]
address = "127.0.0.1:18526"
service = "smtp"
responder = "emulate"
personality = "$work/postfix.toml"
[[listen]]
address = "127.0.0.1:18550"
service = "ftp"
responder = "emulate"
personality = "$work/vsftpd.toml"
CONF
"$bin" run --config "$work/farm.toml" 2>"$work/farm.log" &
farm_pid=$!
sleep 1
"$bin" personality bench http --real 127.0.0.1:18580 --emulated 127.0.0.1:18581 --sessions 1000
"$bin" personality bench smtp --real 127.0.0.1:18525 --emulated 127.0.0.1:18526 --sessions 300
"$bin" personality bench ftp --real 127.0.0.1:18521 --emulated 127.0.0.1:18550 --sessions 300
