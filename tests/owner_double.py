#!/usr/bin/python3
"""Owner bootstrap-server test double for the sztp-redirector tests (not sztpd).

A small HTTPS RESTCONF server, written with the Python standard library only so it shares no
code with sztp-redirector: it serves host-meta and answers get-bootstrapping-data with unsigned
conveyed information it encodes itself (DER by hand), and records every request as one JSON
line in --record (method, path, content type, body, Basic user) so a test can see that a
device arrived.

  owner_double.py --cert C --key K --record FILE [--redirect HOST:PORT ...] [--bind ADDR]

Without --redirect it answers onboarding-information (a test stand-in for a real owner's
signed data); with --redirect it answers redirect-information naming those servers. It prints
"listening on ADDR:PORT" once ready (port 0 means the kernel picks one).
"""

import argparse
import base64
import http.server
import json
import socket
import ssl
import sys
import threading

ID_CT_SZTP_CONVEYED_INFO_JSON = bytes.fromhex("060b2a864886f70d010910012b")
HOST_META = ("<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
             "    <Link rel='restconf' href='/restconf'/>\n</XRD>\n")
GBD = "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data"
RP = "/restconf/operations/ietf-sztp-bootstrap-server:report-progress"


def der_len(n):
    if n < 128:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, body):
    return bytes([tag]) + der_len(len(body)) + body


def content_info(doc):
    """Unsigned CMS ContentInfo {id-ct-sztpConveyedInfoJSON, [0] OCTET STRING doc}."""
    return tlv(0x30, ID_CT_SZTP_CONVEYED_INFO_JSON + tlv(0xA0, tlv(0x04, doc)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--redirect", action="append", default=[])
    args = ap.parse_args()
    lock = threading.Lock()

    if args.redirect:
        servers = []
        for r in args.redirect:
            host, port = r.rsplit(":", 1)
            servers.append({"address": host.strip("[]"), "port": int(port)})
        doc = {"ietf-sztp-conveyed-info:redirect-information": {"bootstrap-server": servers}}
    else:
        doc = {"ietf-sztp-conveyed-info:onboarding-information": {
            "boot-image": {"os-name": "owner-test-os", "os-version": "1.0"}}}
    conveyed = content_info(json.dumps(doc, separators=(",", ":")).encode())
    output = json.dumps({"ietf-sztp-bootstrap-server:output": {
        "conveyed-information": base64.b64encode(conveyed).decode()}}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def record(self, body):
            user = None
            auth = self.headers.get("Authorization", "")
            if auth.lower().startswith("basic "):
                try:
                    user = base64.b64decode(auth[6:]).decode().split(":", 1)[0]
                except Exception:
                    user = "?"
            line = json.dumps({
                "method": self.command, "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "body": body.decode("utf-8", "replace"), "basic_user": user,
                "peer": self.client_address[0]})
            with lock, open(args.record, "a") as f:
                f.write(line + "\n")

        def reply(self, status, ctype, body):
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.record(b"")
            if self.path == "/.well-known/host-meta":
                self.reply(200, "application/xrd+xml", HOST_META.encode())
            else:
                self.reply(404, None, b"")

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            self.record(body)
            if self.path == GBD:
                self.reply(200, "application/yang-data+json", output)
            elif self.path == RP:
                self.reply(204, None, b"")
            else:
                self.reply(404, None, b"")

        def log_message(self, *a):
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET

    class Server(http.server.ThreadingHTTPServer):
        address_family = family

    httpd = Server((args.bind, args.port), Handler)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    host, port = httpd.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
