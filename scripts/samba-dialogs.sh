#!/usr/bin/env bash
# Records real SMB1 dialogs against a private Samba smbd on loopback (a farm honeypot,
# scripts/samba-honeypot.sh), with tshark:
#   samba-enumdomusers.pcap  rpcclient -c enumdomusers   (SAMR over \samr)
#   samba-netremotetod.pcap  rpcclient -c netremotetod   (SRVSVC over \srvsvc)
#   samba-put.pcap           smbclient put of a file     (Tree Connect, NT Create, Write AndX, Close)
#   samba-srvinfo.pcap, samba-netshareenum.pcap          (SRVSVC NetrServerGetInfo, NetrShareEnum)
#   samba-samr-more.pcap     querydominfo, samlookupnames, queryuser (SAMR)
#   samba-lsa.pcap           getusername, lookupnames    (LSARPC)
#   samba-samr-groups.pcap   enumdomgroups, enumalsgroups domain/builtin       (SAMR 11, 15)
#   samba-dispinfo.pcap      querydispinfo 1-5, querydispinfo2, querydispinfo3 (SAMR 40, 48, 51)
#   samba-pwinfo.pcap        getdompwinfo, getusrdompwinfo, queryusergroups    (SAMR 56, 44, 39)
#   samba-querygroup.pcap    querygroup 513 (classes 1, 2, 4)                  (SAMR 19, 20)
#   samba-sessions.pcap      netsessenum, netconnenum (levels 1, 0)           (SRVSVC 12, 8)
#   samba-lsa-more.pcap      lsaquery, lookupsids, enumprivs, lsaenumsid, enumtrust, dsroledominfo
#   samba-sharegetinfo.pcap  netsharegetinfo of public (levels 502, 1, 2, 1005), ADMIN$, C$, none
# and each client's output beside its capture (NAME.out).
#
# usage: scripts/samba-dialogs.sh OUTDIR     (as root; SAMBA_PORT, default 4451)
set -euo pipefail
out=${1:?usage: scripts/samba-dialogs.sh OUTDIR}
port=${SAMBA_PORT:-4451}
addr=127.0.0.1
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/honeyfarm-samba.XXXXXX)
here=$(cd "$(dirname "$0")" && pwd)

for tool in smbd rpcclient smbclient tshark smbpasswd; do
    command -v "$tool" >/dev/null || { echo "samba-dialogs: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

server_pid=
tshark_pid=
cleanup() {
    [ -n "$tshark_pid" ] && kill "$tshark_pid" 2>/dev/null || true
    # The honeypot script stops smbd and the RPC daemons it started when told to stop.
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    pkill -9 -f -- "$work/smb.conf" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Another smbd on this port would answer our clients with its own share.
if (exec 3<>"/dev/tcp/$addr/$port") 2>/dev/null; then
    echo "samba-dialogs: $addr:$port is already in use (another run?); set SAMBA_PORT" >&2
    exit 1
fi
# The server is a farm honeypot (same configuration, accounts alice and bob with password pw).
# Its own session: smbd signals its whole process group when it stops.
setsid bash "$here/samba-honeypot.sh" "$work" "$addr" "$port" > "$work/smbd.log" 2>&1 &
server_pid=$!
# Ready once it has warmed up its RPC services (that session must not be recorded).
for _ in $(seq 1 150); do
    [ -e "$work/ready" ] && break
    sleep 0.2
done
[ -e "$work/ready" ] || { echo "samba-dialogs: smbd did not start:" >&2; cat "$work/smbd.log" >&2; exit 1; }

record() {
    local name=$1
    shift
    rm -f "$out/$name.pcap"
    tshark -i lo -f "tcp port $port" -w "$out/$name.pcap" > "$work/tshark.out" 2> "$work/tshark.err" &
    tshark_pid=$!
    for _ in $(seq 1 100); do
        grep -q "Capturing on" "$work/tshark.err" 2>/dev/null && break
        sleep 0.1
    done
    # "Capturing on" can come before the first packets are caught: knock on the port (a
    # connection without data, which dissect skips) until the knock is in the file.
    local empty
    empty=$(stat -c %s "$out/$name.pcap" 2>/dev/null || echo 0)
    for _ in $(seq 1 50); do
        (exec 3<>"/dev/tcp/$addr/$port") 2>/dev/null || true
        sleep 0.1
        [ "$(stat -c %s "$out/$name.pcap" 2>/dev/null || echo 0)" -gt "$empty" ] && break
    done
    "$@" > "$out/$name.out" 2>&1 || true
    sleep 1
    kill -INT "$tshark_pid"
    wait "$tshark_pid" 2>/dev/null || true
    tshark_pid=
}

rpc=(rpcclient -U '%' -N -p "$port"
    --option='client min protocol=NT1' --option='client max protocol=NT1'
    --option='client ipc min protocol=NT1' --option='client ipc max protocol=NT1'
    "$addr")
record samba-enumdomusers "${rpc[@]}" -c enumdomusers
record samba-netremotetod "${rpc[@]}" -c netremotetod
record samba-srvinfo "${rpc[@]}" -c srvinfo
record samba-netshareenum "${rpc[@]}" -c netshareenum
record samba-samr-more "${rpc[@]}" -c 'querydominfo; samlookupnames domain alice; queryuser 0x3e8'
record samba-lsa "${rpc[@]}" -c 'getusername; lookupnames alice'
record samba-samr-groups "${rpc[@]}" -c 'enumdomgroups; enumalsgroups domain; enumalsgroups builtin'
record samba-dispinfo "${rpc[@]}" -c 'querydispinfo; querydispinfo2; querydispinfo3; querydispinfo 2; querydispinfo 3; querydispinfo 4; querydispinfo 5'
record samba-pwinfo "${rpc[@]}" -c 'getdompwinfo; getusrdompwinfo 1000; queryusergroups 1000'
record samba-querygroup "${rpc[@]}" -c 'querygroup 513; querygroup 513 2; querygroup 513 4'
record samba-sharegetinfo "${rpc[@]}" -c 'netsharegetinfo public; netsharegetinfo public 1; netsharegetinfo public 2; netsharegetinfo ADMIN$ 502; netsharegetinfo C$; netsharegetinfo public 1005; netsharegetinfo nosuchshare'
record samba-sessions "${rpc[@]}" -c 'netsessenum; netconnenum; netsessenum 0; netconnenum 0; netsessenum 10'
record samba-lsa-more "${rpc[@]}" -c 'lsaquery; lookupsids S-1-5-32-544; enumprivs; lsaenumsid; enumtrust; dsroledominfo'
# Signed DCE/RPC: NTLMSSP in the bind, bind_ack and auth3, a verifier on every call.
record samba-signed-rpc "${rpc[@]/#-N/-Ualice%pw}" -c 'sign; srvinfo'

head -c 3000 /dev/urandom > "$work/payload.bin"
cp "$work/payload.bin" "$out/samba-put.payload"
record samba-put smbclient "//$addr/public" -p "$port" -U alice%pw -m NT1 \
    --option='client min protocol=NT1' --option='client max protocol=NT1' \
    -c "put $work/payload.bin x.exe"
# smbd may still be writing when the client has gone: give it a moment.
for _ in $(seq 1 50); do
    cmp -s "$work/payload.bin" "$work/share/x.exe" && break
    sleep 0.1
done
if cmp -s "$work/payload.bin" "$work/share/x.exe"; then
    echo "put: file landed intact" >> "$out/samba-put.out"
else
    echo "put: file differs: sent $(stat -c %s "$work/payload.bin") bytes, share has $(stat -c %s "$work/share/x.exe" 2>/dev/null || echo none)" >> "$out/samba-put.out"
fi
# A share list too long for one DCE/RPC fragment (Samba sends at most 4280 bytes a PDU): 300
# more shares, loaded by a configuration reload.
for i in $(seq -w 1 300); do
    printf '[archive%s]\n  path = /srv/samba/public\n  comment = quarterly archive number %s\n' "$i" "$i"
done >> "$work/smb.conf"
pkill -HUP -f -- "smbd -F --no-process-group -s $work/smb.conf"
sleep 1
record samba-fragmented "${rpc[@]}" -c 'netshareenumall'
echo "samba-dialogs: recorded in $out"
