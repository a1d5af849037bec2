#!/usr/bin/env bash
# Installs what honeyfarm's build and tests need on a fresh Debian machine, and fetches the
# crates. Safe to run again. The Rust toolchain (cargo) must already be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build tools, tshark (an independent dissector the tests compare with), Python 3 (whose
# ftplib, smtplib and http.client check rewritten messages) and Samba.
need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v tshark >/dev/null 2>&1 || need_apt+=(tshark)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v pip3 >/dev/null 2>&1 || need_apt+=(python3-pip)
# Samba: the real SMB1 server and clients the tests record dialogs with.
command -v smbd >/dev/null 2>&1 || need_apt+=(samba)
command -v smbclient >/dev/null 2>&1 || need_apt+=(smbclient)
# The farm's Samba honeypots: `ip` gives each its loopback address; the tests look for and stop
# leftover processes with ps and pkill.
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v pkill >/dev/null 2>&1 || need_apt+=(procps)
command -v flock >/dev/null 2>&1 || need_apt+=(util-linux)
command -v hostname >/dev/null 2>&1 || need_apt+=(hostname)
command -v net >/dev/null 2>&1 || need_apt+=(samba-common-bin)
# The network testbed (scripts/testbed.sh, tests/testbed.rs): real scanners in a namespace,
# nftables, a SYN capture, and curl for the metrics endpoint. The fidelity matrix
# (tests/fidelity.rs) uses nmap, tcpdump, rpcclient (smbclient) and `hostname`.
command -v nmap >/dev/null 2>&1 || need_apt+=(nmap)
command -v masscan >/dev/null 2>&1 || need_apt+=(masscan)
command -v zmap >/dev/null 2>&1 || need_apt+=(zmap)
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
command -v tcpdump >/dev/null 2>&1 || need_apt+=(tcpdump)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The qemu honeypot backend (docs/RUNNING.md, "VM honeypots"): QEMU, qemu-img, and debootstrap
# for scripts/vm-image.sh (mkfs.ext4 and debugfs come with e2fsprogs).
# QEMU's emulator and qemu-utils must come from one release: some machines carry a newer
# qemu-utils (a backport) that the archive's qemu-system-x86 cannot be installed beside, so
# both are installed at the emulator's version (a downgrade of qemu-utils where needed).
need_qemu=0
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_qemu=1
[ "$need_qemu" = 1 ] || command -v qemu-img >/dev/null 2>&1 || need_apt+=(qemu-utils)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
command -v debugfs >/dev/null 2>&1 || need_apt+=(e2fsprogs)
# The real servers the emulator is scanned from and compared with (scripts/emul-servers.sh,
# tests/emulate.rs); Postfix preseeded to install without a configuration.
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx-light)
command -v apache2 >/dev/null 2>&1 || need_apt+=(apache2)
command -v postfix >/dev/null 2>&1 || need_apt+=(postfix)
command -v vsftpd >/dev/null 2>&1 || need_apt+=(vsftpd)
command -v swaks >/dev/null 2>&1 || need_apt+=(swaks)
# Exim runs from its unpacked package beside Postfix (emul-servers.sh); its one library
# Postfix does not bring:
dpkg -s libidn12 >/dev/null 2>&1 || need_apt+=(libidn12)
# ProFTPD runs from its unpacked package beside vsftpd (they conflict as packages); the
# libraries it needs that nothing else here brings:
for lib in libmemcached11 libmemcachedutil2 libpcre2-posix3 libhiredis0.14; do
    dpkg -s "$lib" >/dev/null 2>&1 || need_apt+=("$lib")
done
if [ ${#need_apt[@]} -gt 0 ] || [ "$need_qemu" = 1 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: need root to install: ${need_apt[*]} $([ "$need_qemu" = 1 ] && echo qemu-system-x86)" >&2
        exit 1
    fi
    # The servers installed here are started by the tests, on their own ports and
    # configurations: none is started by its package (as a systemd machine would, leaving
    # smbd on 445, Postfix on 25, and nginx and Apache both after port 80), unless a policy
    # (a container's) is in place already.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# scripts/setup.sh: no service starts while it installs.\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update
    if [ ${#need_apt[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_apt[@]}"
    fi
    if [ "$need_qemu" = 1 ]; then
        v=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends --allow-downgrades \
            "qemu-system-x86=$v" "qemu-system-common=$v" "qemu-utils=$v"
    fi
fi

# impacket (PyPI): its samrdump calls are a shipped script, checked through the farm; the
# fidelity matrix (tests/fidelity.rs) runs its samrdump.py, lookupsid.py and smbclient.py.
if ! python3 -c 'import impacket' >/dev/null 2>&1; then
    command -v pip3 >/dev/null 2>&1 || { echo "setup: pip3 is missing (apt-get install python3-pip)" >&2; exit 1; }
    # Debian 12's pip refuses system-wide installs without --break-system-packages (PEP 668),
    # which older pips do not know: the flag only where pip has it, and pip's own error shown.
    pip_flags=()
    if [[ $(pip3 install --help) == *--break-system-packages* ]]; then
        pip_flags+=(--break-system-packages)
    fi
    pip3 install "${pip_flags[@]}" 'impacket==0.13.*'
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install the Rust toolchain (rustup) first" >&2
    exit 1
fi
# Fuzzing (scripts/fuzz.sh): cargo-fuzz from crates.io on the nightly toolchain.
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "setup: the nightly toolchain (for cargo fuzz) is missing: rustup toolchain install nightly" >&2
    exit 1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo fetch --locked
