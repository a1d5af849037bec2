"""Parses protocol messages with Python's standard library, which nobody here wrote, to check
what honeyfarm encodes. Reads `kind<TAB>hex` lines, prints one result line for each."""
import ftplib
import http.client
import io
import smtplib
import sys

for line in sys.stdin:
    kind, hexdata = line.rstrip("\n").split("\t")
    data = bytes.fromhex(hexdata)
    if kind == "pasv":
        host, port = ftplib.parse227(data.decode().rstrip("\r\n"))
        print(f"{host} {port}")
    elif kind == "epsv":
        host, port = ftplib.parse229(data.decode().rstrip("\r\n"), ("peer", 21))
        print(f"{host} {port}")
    elif kind == "smtp":
        s = smtplib.SMTP()
        s.file = io.BytesIO(data)
        code, msg = s.getreply()
        first = msg.decode().split("\n")[0]
        print(f"{code} {first}")
    elif kind == "http":
        request_line, rest = data.split(b"\r\n", 1)
        headers = http.client.parse_headers(io.BytesIO(rest))
        body = rest.split(b"\r\n\r\n", 1)[1]
        print(f"{request_line.decode()} | Host={headers['Host']} | Content-Length={headers['Content-Length']} | body={len(body)}")
    else:
        raise SystemExit(f"unknown kind {kind}")
