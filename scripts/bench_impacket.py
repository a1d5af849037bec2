#!/usr/bin/env python3
"""Times impacket parsing (and re-serialising) the messages of the SMB bench.

`cargo bench -p honeyfarm-protocols --bench smb` writes the messages it measures to
target/smb-bench-messages.bin (a 4-byte big-endian length before each); this script decodes
each with impacket's NetBIOS session packet and SMB1 packet classes, splits the command
blocks (impacket's SMBCommand), and serialises the SMB packet again, the same work as the
generated codec's decode+encode (less: impacket does not go into DCE/RPC or NDR here).
"""
import pathlib
import struct
import sys
import time

from impacket.nmb import NetBIOSSessionPacket
from impacket.smb import NewSMBPacket, SMBCommand

path = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/smb-bench-messages.bin")
data = path.read_bytes()
msgs = []
at = 0
while at < len(data):
    (n,) = struct.unpack(">I", data[at:at + 4])
    msgs.append(data[at + 4:at + 4 + n])
    at += 4 + n
total = sum(len(m) for m in msgs)


def once():
    for m in msgs:
        p = NetBIOSSessionPacket(m)
        smb = NewSMBPacket(data=p.get_trailer())
        SMBCommand(smb["Data"][0])
        smb.getData()


once()
rounds = 0
start = time.perf_counter()
while time.perf_counter() - start < 3.0:
    once()
    rounds += 1
elapsed = (time.perf_counter() - start) / rounds
print(f"impacket: {len(msgs)} messages, {total} bytes: {elapsed * 1e6:.1f} us per pass, "
      f"{total / elapsed / 2**20:.2f} MiB/s, {len(msgs) / elapsed:,.0f} messages/s")
