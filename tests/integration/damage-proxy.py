#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# An HTTP proxy on 127.0.0.1 in front of the test S3 server that damages what
# goes through it: it flips one bit in the body of the first COUNT PUTs of packs
# (every one: COUNT -1), whole or a part, cuts the replies to the first SHORT
# ranged GETs of packs to half their length (a reply complete in itself), and
# passes everything else through as it is. Requests keep their Host header, so
# their signatures still hold. With DAMAGE_PROXY_REFUSE=SUFFIX in the
# environment, it answers every PUT of a path ending in SUFFIX with 403
# AccessDenied itself (a write the server refuses at a known step).
# Usage: damage-proxy.py PORTFILE UPSTREAM_PORT COUNT [SHORT]
import http.client
import http.server
import os
import sys
import threading

import loopback

port_file, upstream, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
short = int(sys.argv[4]) if len(sys.argv) > 4 else 0
lock = threading.Lock()
HOP = {"connection", "keep-alive", "expect", "transfer-encoding", "proxy-connection"}
refuse = os.environ.get("DAMAGE_PROXY_REFUSE", "")
DENIED = b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code></Error>'


def damage(path, body):
    """Whether to flip a bit of this PUT's body (counts the ones damaged)."""
    global count
    if "/packs/" not in path or len(body) == 0:
        return False
    with lock:
        if count == 0:
            return False
        count -= 1 if count > 0 else 0
        return True


def cut(path, headers):
    """Whether to cut this GET's reply (counts the ones cut)."""
    global short
    if "/packs/" not in path or "Range" not in headers:
        return False
    with lock:
        if short == 0:
            return False
        short -= 1
        return True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def relay(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = bytearray(self.rfile.read(n)) if n else bytearray()
        if self.command == "PUT" and refuse and self.path.split("?")[0].endswith(refuse):
            self.send_response(403, "Forbidden")
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(DENIED)))
            self.end_headers()
            self.wfile.write(DENIED)
            return
        if self.command == "PUT" and damage(self.path, body):
            body[len(body) // 2] ^= 0x10
        up = http.client.HTTPConnection("127.0.0.1", upstream, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        up.request(self.command, self.path, body=bytes(body), headers=headers)
        resp = up.getresponse()
        data = resp.read()
        if self.command == "GET" and resp.status in (200, 206) and cut(self.path, self.headers):
            data = data[: len(data) // 2]
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and (k.lower() != "content-length" or self.command == "HEAD"):
                self.send_header(k, v)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        up.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay

    def log_message(self, *args):
        pass


loopback.serve(Handler, port_file, threaded=True)
