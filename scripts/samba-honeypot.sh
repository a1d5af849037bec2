#!/usr/bin/env bash
# Runs one Samba honeypot in the foreground: smbd speaking SMB1 only, on ADDRESS:PORT, with
# everything it keeps under DIR. Every honeypot (and the server scripts are recorded from) is
# the same machine: workgroup FARMNET, name FILESRV01, one domain SID, users alice and bob
# (password pw), and the shares a Windows server has: IPC$ (Samba's own), ADMIN$ and C$ (guest-writable: worms
# drop files into ADMIN$\system32), and a guest-writable share `public`. The farm's process
# backend runs it per lease.
#
# Nothing a client sees names this machine's directory, address or purpose: smbd runs in a
# mount namespace of its own where DIR/drive is /srv/samba (C$, `C:\srv\samba` to clients),
# with DIR/share on /srv/samba/public and the Windows tree under /srv/samba/Windows (ADMIN$),
# the same paths for every honeypot.
#
# Its host name (what Samba gives as its DNS name) is the one the shipped scripts were
# recorded with, `vm`, whatever this machine's name is; HONEYPOT_DNS_NAME gives another.
# HONEYPOT_NAME in the environment gives it another NetBIOS name (a farm whose honeypots are not
# the recorded machine maps the names: `[honeypots] names`).
# It writes DIR/ready once it has started its RPC services (with one rpcclient session of its
# own); wait for that file before recording from it or handing attackers to it.
#
# PORT may be a comma-separated list (`445,139`: a machine's two SMB ports); the first is the
# one the warm-up uses.
# ADDRESS 0.0.0.0 serves every address the machine has (the netns backend: the honeypot's own
# namespace, where the telescope address is added when it is leased).
#
# usage: scripts/samba-honeypot.sh DIR ADDRESS PORT     (as root)
#        scripts/samba-honeypot.sh conf [LINE...]   (prints the smb.conf)
set -euo pipefail
# The honeypot's smb.conf (identity, protocol, shares), with the lines given added to [global]:
# the one definition both this script and scripts/vm-image.sh (the qemu backend's guest) use.
# `samba-honeypot.sh conf [LINE...]` prints it.
smb_conf() {
    printf '[global]\n'
    printf '  %s\n' "workgroup = FARMNET" "netbios name = ${HONEYPOT_NAME:-FILESRV01}" \
        "server role = standalone server" "server min protocol = NT1" \
        "server max protocol = NT1" "map to guest = bad user" "restrict anonymous = 0" \
        "server signing = disabled" "disable netbios = yes" "load printers = no" \
        "printing = bsd" "printcap name = /dev/null" "disable spoolss = yes" "$@"
    cat <<CONF
[ADMIN\$]
  comment = Remote Admin
  path = /srv/samba/Windows
  administrative share = yes
  read only = no
  guest ok = yes
[C\$]
  comment = Default share
  path = /srv/samba
  administrative share = yes
  read only = no
  guest ok = yes
[public]
  path = /srv/samba/public
  read only = no
  guest ok = yes
CONF
}
if [ "${1:-}" = conf ]; then
    shift
    smb_conf "$@"
    exit 0
fi
dir=${1:?usage: samba-honeypot.sh DIR ADDRESS PORT}
addr=${2:?usage: samba-honeypot.sh DIR ADDRESS PORT}
port=${3:?usage: samba-honeypot.sh DIR ADDRESS PORT}
first_port=${port%%,*}
dns_name=${HONEYPOT_DNS_NAME:-vm}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rm -f "$dir/ready"
mkdir -p "$dir"/{private,lock,state,cache,pid,ncalrpc,share} "$dir"/drive/{public,Windows/system32}
chmod 755 "$dir"
chmod 777 "$dir/share" "$dir/drive" "$dir/drive/Windows" "$dir/drive/Windows/system32"
# Where clients see the shares (inside smbd's mount namespace only).
root=/srv/samba

# smbd binds only to addresses the machine has: give the loopback this one.
if [ "$addr" = 0.0.0.0 ]; then
    bind=("bind interfaces only = no")
    addr=127.0.0.1
else
    bind=("interfaces = $addr" "bind interfaces only = yes")
    if [ "$addr" != 127.0.0.1 ]; then
        ip addr replace "$addr/32" dev lo
    fi
fi

smb_conf "smb ports = ${port//,/ }" "${bind[@]}" \
    "private dir = $dir/private" "lock directory = $dir/lock" "state directory = $dir/state" \
    "cache directory = $dir/cache" "pid directory = $dir/pid" "ncalrpc dir = $dir/ncalrpc" \
    "log file = $dir/log.%m" > "$dir/smb.conf"

net -s "$dir/smb.conf" setlocalsid S-1-5-21-3623811015-3361044348-30300820 >/dev/null
for user in alice bob; do
    flock /tmp/honeyfarm-samba-users.lock sh -c "id '$user' >/dev/null 2>&1 || useradd -M '$user'"
    printf 'pw\npw\n' | smbpasswd -c "$dir/smb.conf" -a -s "$user" >/dev/null
done
# samba-dcerpcd and its workers leave smbd's process group: when told to stop, stop
# everything that runs with this configuration.
stop() {
    # (set -e is on: every command here may fail without ending the script.)
    if [ -n "${smbd_pid:-}" ]; then kill "$smbd_pid" 2>/dev/null || true; fi
    # Again until nothing is left: a worker started while we were stopping appears late.
    for _ in 1 2 3 4 5 6 7 8; do
        pkill -f -- "$dir/smb.conf" 2>/dev/null || true
        sleep 0.2
        pgrep -f -- "$dir/smb.conf" >/dev/null || return 0
    done
    pkill -9 -f -- "$dir/smb.conf" 2>/dev/null || true
}
trap 'stop; exit 0' TERM INT
# The name resolves (Samba gives no DNS name it cannot resolve) through a hosts file of its own.
printf '127.0.0.1 localhost\n127.0.0.1 %s\n' "$dns_name" > "$dir/hosts"
# A private mount namespace: a small tmpfs hides the machine's /srv from smbd alone, and the
# honeypot's directories are bound onto the fixed paths. And a UTS namespace: Samba tells
# clients its host name (NTLMSSP's DNS computer name, nmap smb-os-discovery's "Computer name"
# and FQDN), which must be the recorded machine's, not this one's (the hosts file is bound
# over /etc/hosts in the mount namespace). smbd's children
# (samba-dcerpcd, the RPC workers) inherit both; they go away with them.
mkdir -p /srv
unshare -m -u --propagation private -- bash -c '
    set -e
    hostname "$3"
    mount --bind "$2/hosts" /etc/hosts
    mount -t tmpfs -o size=1m,mode=755 tmpfs /srv
    mkdir -p "$1"
    mount --bind "$2/drive" "$1"
    mount --bind "$2/share" "$1/public"
    exec smbd -F --no-process-group -s "$2/smb.conf" --debug-stdout' bash "$root" "$dir" "$dns_name" &
smbd_pid=$!
# Samba starts its RPC services on first use (a few hundred milliseconds): use them once, so a
# warm honeypot answers a handoff at once.
(
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/$addr/$first_port") 2>/dev/null && break
        sleep 0.1
    done
    rpcclient -U% -N -p "$first_port" --option='client min protocol=NT1' --option='client max protocol=NT1' \
        --option='client ipc min protocol=NT1' --option='client ipc max protocol=NT1' \
        "$addr" -c 'srvinfo; enumdomusers; lsaquery' >/dev/null 2>&1 || true
    # Ready: what is recorded or served from now on is not this warm-up.
    touch "$dir/ready"
) &
wait "$smbd_pid" || true
stop
