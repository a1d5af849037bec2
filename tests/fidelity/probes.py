#!/usr/bin/env python3
"""Sends each TCP probe nmap -sV would send at its default intensity (rarity <= 7, from
nmap-service-probes) on a fresh connection to HOST on each PORT, and prints how the server
answered: `data N bytes HEAD` (the first 13 bytes: the NetBIOS header, SMB's magic, command
and status), `eof` (closed: FIN), `reset` (RST) or `open` (nothing within WAIT seconds, still
open), one line per port and probe, in file order. nmap -sV itself stops at the first match
(SMBProgNeg): this shows every probe's answer, which is what a scanner that goes on sees.

usage: probes.py HOST PORT[,PORT...] [WAIT]
"""
import concurrent.futures
import re
import socket
import sys

PROBES = "/usr/share/nmap/nmap-service-probes"
ESCAPES = {"0": 0, "a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}


def unescape(s):
    out, i = bytearray(), 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode("latin-1")
            i += 1
        elif s[i + 1] == "x":
            out.append(int(s[i + 2 : i + 4], 16))
            i += 4
        elif s[i + 1] in ESCAPES:
            out.append(ESCAPES[s[i + 1]])
            i += 2
        else:
            out += s[i + 1].encode("latin-1")
            i += 2
    return bytes(out)


def probes(max_rarity=7):
    found, name, payload = [], None, None
    with open(PROBES, encoding="latin-1") as f:
        for line in f:
            if line.startswith("Probe "):
                m = re.match(r"^Probe TCP (\S+) q\|(.*)\|", line)
                # A UDP probe's rarity is not a TCP probe's.
                name, payload = (m.group(1), unescape(m.group(2))) if m else (None, None)
                # NULL has no rarity line: it is always sent.
                if name == "NULL":
                    found.append((name, payload))
                continue
            m = re.match(r"^rarity (\d+)", line)
            if m and name and name != "NULL" and int(m.group(1)) <= max_rarity:
                found.append((name, payload))
    return found


def answer(host, port, payload, wait):
    s = socket.socket()
    s.settimeout(wait)
    try:
        s.connect((host, port))
        if payload:
            s.sendall(payload)
        data = s.recv(65536)
        if not data:
            return "eof"
        return f"data {len(data)} bytes {data[:13].hex()}"
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "open"
    finally:
        s.close()


def main():
    host, ports = sys.argv[1], [int(p) for p in sys.argv[2].split(",")]
    wait = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    jobs = [(port, name, payload) for port in ports for name, payload in probes()]
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as ex:
        results = list(ex.map(lambda j: answer(host, j[0], j[2], wait), jobs))
    for (port, name, _), r in zip(jobs, results):
        print(f"{port} {name}: {r}")


main()
