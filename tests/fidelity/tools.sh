#!/usr/bin/env bash
# Runs the clients of the fidelity matrix (tests/fidelity.rs) against TARGET, from the
# attacker's namespace (hfm-cli), writing each row's output (stdout, stderr, exit status) to
# OUTDIR/ROW.out and its name and duration (`NAME<tab>MILLISECONDS`) to OUTDIR/ROW.row. Rows
# run four at a time.
#
#   smb     the SMB clients: rpcclient (31 commands and a multi-command one), impacket's
#           samrdump.py, lookupsid.py and smbclient.py, nmap's SMB scripts
#   probes  nmap -sV --version-trace on 445 and 139, and every probe of nmap -sV sent on its
#           own (probes.py): input that is not SMB
#
# usage: tools.sh TARGET OUTDIR smb|probes
set -uo pipefail
target=${1:?usage: tools.sh TARGET OUTDIR}
out=${2:?usage: tools.sh TARGET OUTDIR}
phase=${3:?usage: tools.sh TARGET OUTDIR smb|probes}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
smb1=(--option='client min protocol=NT1' --option='client max protocol=NT1'
    --option='client ipc min protocol=NT1' --option='client ipc max protocol=NT1')
# impacket's example scripts, where pip installed them.
examples=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')

# Every row of a phase: its name, a tab, then the command (run by `bash -c`, TARGET in $T).
smb_rows() {
    local cmds=(
        enumdomusers enumdomgroups "enumalsgroups domain" "enumalsgroups builtin" enumdomains
        querydominfo "querydominfo 12" querydispinfo querydispinfo2 "queryuser 1000"
        "queryusergroups 1000" getdompwinfo "getusrdompwinfo 1000" "lookupnames alice"
        "samlookupnames domain alice" "samlookuprids domain 1000" "lookupsids S-1-5-32-544"
        lsaquery lsaenumsid enumprivs enumtrust dsroledominfo getusername srvinfo netremotetod
        netshareenum netshareenumall "netsharegetinfo public" netsessenum netconnenum
        "enumdomusers; querydominfo; lookupnames alice"
    )
    local c
    for c in "${cmds[@]}"; do
        printf 'rpcclient %s\trpcclient -U%% -N %s "$T" -c "%s"\n' "$c" "${smb1[*]@Q}" "$c"
    done
    printf 'samrdump.py\tpython3 %q -no-pass "$T"\n' "$examples/samrdump.py"
    printf 'lookupsid.py\tpython3 %q -no-pass "@$T" 2000\n' "$examples/lookupsid.py"
    printf 'smbclient.py\tpython3 %q -no-pass -inputfile %q "@$T"\n' \
        "$examples/smbclient.py" "$here/smbclient.in"
    local s
    for s in smb-os-discovery smb-security-mode smb-protocols smb-enum-shares smb-enum-users; do
        printf 'nmap %s\tnmap -n -Pn -p 445 --script %s "$T"\n' "$s" "$s"
    done
}

probes_rows() {
    printf 'nmap -sV\tnmap -n -Pn -sV --version-trace -p 445,139 "$T"\n'
    printf 'nmap -sV probes\tpython3 %q "$T" 445,139\n' "$here/probes.py"
}

run_row() {
    local name=$1 cmd=$2 file
    file="$out/$(tr ' ;' '_-' <<<"$name" | tr -s '_-').out"
    local began=$(date +%s%N)
    timeout 150 ip netns exec hfm-cli env T="$target" bash -c "$cmd" >"$file" 2>&1
    echo "exit: $?" >>"$file"
    printf '%s\t%s\n' "$name" $((($(date +%s%N) - began) / 1000000)) >"${file%.out}.row"
}
export -f run_row
export out target

"${phase}_rows" | while IFS=$'\t' read -r name cmd; do
    printf '%s\0%s\0' "$name" "$cmd"
done | xargs -0 -n 2 -P 4 bash -c 'run_row "$1" "$2"' _
