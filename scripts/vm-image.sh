#!/usr/bin/env bash
# Builds the qemu backend's honeypot VM image: Debian 12 (debootstrap from Debian's mirror, the
# only network it uses) with Debian's kernel and Samba configured as the farm's honeypot
# (scripts/samba-honeypot.sh: SMB1 only, workgroup FARMNET, name FILESRV01, the same domain SID,
# users alice and bob with password pw, guest-writable `public`, ADMIN$ and C$).
#
# The guest boots without systemd: /sbin/hf-init (PID 1) mounts the pseudo file systems, gives
# eth0 the fixed address $guest_addr (every clone keeps the address its saved state has: each is
# alone on a tap in its honeypot's namespace, whose address $gateway is its default route),
# starts smbd and a command channel on the second serial port, warms Samba's RPC services once
# and prints HONEYFARM-READY on the serial console.
#
# Output, in a directory keyed by a hash of this script and its inputs (rebuilt only when they
# change): base.qcow2 (the root file system, ext4 on the whole disk), vmlinuz and initrd.img
# (booted directly by QEMU). The directory's path is printed on stdout. A full build takes 4-5
# minutes (271 s here, mostly debootstrap's downloads) and ~1.5 GB while it runs; what stays is
# 730 MB (base.qcow2 717 MB). Comments are not part of the key: editing them rebuilds nothing.
#
# A build drops the images of other keys in CACHE_DIR, and the warm states saved from them
# (qemu.rs names a state directory ACCEL-MEMm-KEY, KEY the image's directory name) in
# HONEYFARM_VM_STATE (default: vm-state beside CACHE_DIR, where the tests keep theirs), unless
# a farm holds that state's lock: a stale image is 730 MB, a state 200 MB.
#
# usage: scripts/vm-image.sh [CACHE_DIR]     (as root; default /var/cache/honeyfarm/vm,
#        or HONEYFARM_VM_CACHE)
set -euo pipefail
cache=${1:-${HONEYFARM_VM_CACHE:-/var/cache/honeyfarm/vm}}
state=${HONEYFARM_VM_STATE:-$(dirname "$cache")/vm-state}
mirror=${HONEYFARM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
packages=linux-image-amd64,initramfs-tools,samba,smbclient,iproute2,procps,kmod,iputils-ping
size=2G
# The guest's network: its fixed address on the tap QEMU is given in the honeypot's namespace,
# and the tap's address there, its default route (runtime/src/farm/honeypot/qemu.rs: GUEST and
# GATEWAY say the same).
guest_addr=172.16.20.15/24
gateway=172.16.20.1
# The honeypot's Samba configuration: scripts/samba-honeypot.sh's, on the VM's own paths. What
# an attacker writes is on the VM's disk at once (sync always): a stopped honeypot's overlay
# keeps it.
smb_conf=$(env -u HONEYPOT_NAME bash "$(dirname "$0")/samba-honeypot.sh" conf "smb ports = 445" \
    "log file = /var/log/samba/log.%m" "sync always = yes")
# The guest's host name: Samba puts it in its NTLMSSP challenge (the DNS computer name), so it
# must be the one of the machine the farm's scripts were recorded from (its process honeypots
# are this machine; the NetBIOS name stays FILESRV01).
guest_hostname=${HONEYFARM_VM_HOSTNAME:-$(hostname)}

key=$(
    {
        grep -v '^[[:space:]]*#' "$0"
        echo "$mirror $suite $packages $size $guest_hostname $guest_addr $gateway"
        echo "$smb_conf"
    } | sha256sum | cut -c1-16
)
out=$cache/$key
if [ -f "$out/base.qcow2" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ]; then
    echo "$out"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "vm-image: building the image needs root (debootstrap, chroot)" >&2
    exit 1
fi
for tool in debootstrap qemu-img mkfs.ext4; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "vm-image: $tool is missing (scripts/setup.sh installs it)" >&2
        exit 1
    }
done
mkdir -p "$cache"
# One build at a time per cache; a second caller waits and then finds the image.
exec 9>"$cache/.build.lock"
flock 9
if [ -f "$out/base.qcow2" ]; then
    echo "$out"
    exit 0
fi
# Removes the images of keys other than $key and the warm states saved from them (also those
# named before states carried their image's key, ACCEL-MEMm): an image unless a process has one
# of its files open (a VM on an overlay of it), a state unless a farm or test holds its lock
# (it is booting or saving it now).
drop_stale() {
    local d name
    for d in "$cache"/*/; do
        name=$(basename "$d")
        if [[ $name =~ ^[0-9a-f]{16}$ ]] && [ "$name" != "$key" ]; then
            # (find fails on the descriptors of processes it may not read: its output decides.)
            if [ -n "$(find /proc/[0-9]*/fd -lname "$d*" -print -quit 2>/dev/null)" ]; then
                echo "vm-image: kept $d: in use" >&2
            else
                echo "vm-image: removed the image of another key, $d" >&2
                rm -rf "$d"
            fi
        fi
    done
    [ -d "$state" ] || return 0
    for d in "$state"/*/; do
        name=$(basename "$d")
        if [[ $name =~ ^(kvm|tcg)-[0-9]+m(-[0-9a-f]{16})?$ ]] && [[ $name != *-"$key" ]]; then
            if flock -n "$d/.lock" rm -rf "$d"; then
                echo "vm-image: removed the warm state of another image, $d" >&2
            else
                echo "vm-image: kept $d: in use" >&2
            fi
        fi
    done
}

# Stdout is the image's path alone: what the build's tools print there (mkfs.ext4 says
# "Creating regular file" even with -q) goes to stderr.
exec 3>&1 1>&2
work=$(mktemp -d "${TMPDIR:-/var/tmp}/hfq-vm-image.XXXXXX")
trap 'umount -R "$work/root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
root=$work/root
began=$(date +%s)

echo "vm-image: debootstrap $suite from $mirror" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    exit 1
}

# Only the modules the VM needs in its initramfs: a small one boots faster.
cat >"$root/etc/initramfs-tools/modules" <<'EOF'
virtio_pci
virtio_blk
virtio_net
ext4
EOF
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
mount -t proc proc "$root/proc"
chroot "$root" update-initramfs -u -k all >/dev/null
umount "$root/proc"

echo "$guest_hostname" >"$root/etc/hostname"
printf '127.0.0.1 localhost\n%s %s\n' "${guest_addr%/*}" "$guest_hostname" >"$root/etc/hosts"
printf '/dev/vda / ext4 rw,noatime 0 1\n' >"$root/etc/fstab"

srv=/srv/samba
mkdir -p "$root$srv/public" "$root$srv/Windows/system32"
chmod 777 "$root$srv" "$root$srv/public" "$root$srv/Windows" "$root$srv/Windows/system32"
printf '%s\n' "$smb_conf" >"$root/etc/samba/smb.conf"
chroot "$root" net setlocalsid S-1-5-21-3623811015-3361044348-30300820 >/dev/null
# The same uids as the machine the scripts were recorded on (Samba derives the users' RIDs
# from them, and rpcclient prints those).
for user in alice:1001 bob:1002; do
    uid=${user#*:}
    user=${user%:*}
    chroot "$root" sh -c "id $user >/dev/null 2>&1 || useradd -M -u $uid $user"
    printf 'pw\npw\n' | chroot "$root" smbpasswd -a -s "$user" >/dev/null
done

cat >"$root/sbin/hf-init" <<INIT
#!/bin/sh
# PID 1 of the honeypot VM: network, smbd, one warm-up, then reap children forever.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /run/samba /var/log/samba
hostname -F /etc/hostname
modprobe virtio_net 2>/dev/null
ip link set lo up
ip addr add $guest_addr dev eth0
ip link set eth0 up
ip route add default via $gateway
smbd -D
# The farm's command channel (its tests' probes from inside the guest): each line read on the
# second serial port (a socket in the honeypot's directory on the host) runs as a shell
# command; its output is followed by "HF-DONE <exit status>".
(
    stty -F /dev/ttyS1 raw -echo
    while IFS= read -r line; do
        sh -c "\$line" </dev/null 2>&1
        echo "HF-DONE \$?"
    done
) </dev/ttyS1 >/dev/ttyS1 2>&1 &
for _ in \$(seq 1 200); do
    smbclient -N -L 127.0.0.1 --option='client min protocol=NT1' >/dev/null 2>&1 && break
    sleep 0.05
done
rpcclient -U% -N --option='client min protocol=NT1' --option='client max protocol=NT1' \
    --option='client ipc min protocol=NT1' --option='client ipc max protocol=NT1' \
    127.0.0.1 -c 'srvinfo; enumdomusers; lsaquery' >/dev/null 2>&1
sync
echo HONEYFARM-READY >/dev/ttyS0
while :; do
    wait
    sleep 1
done
INIT
chmod 755 "$root/sbin/hf-init"

# Not needed in the VM: the package cache and documentation.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc "$root"/usr/share/man \
    "$root"/var/lib/apt/lists/*

mkdir -p "$work/out"
cp "$root"/boot/vmlinuz-* "$work/out/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/out/initrd.img"
mkfs.ext4 -q -L hfroot -d "$root" "$work/root.raw" "$size"
qemu-img convert -f raw -O qcow2 "$work/root.raw" "$work/out/base.qcow2"
rm -f "$work/root.raw"
rm -rf "$out"
mv "$work/out" "$out"
drop_stale
echo "vm-image: built $out in $(($(date +%s) - began)) s ($(du -sh "$out" | cut -f1))"
echo "$out" >&3
