#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# A webhook receiver for tests: listens on 127.0.0.1 (a free port, written to
# PORTFILE), answers every POST with STATUS (default 200) and appends one JSON line
# per request {"path", "content_type", "body"} to LOG.
# Usage: http-sink.py PORTFILE LOG [STATUS]
import http.server
import json
import sys

import loopback

port_file, log_file = sys.argv[1], sys.argv[2]
status = int(sys.argv[3]) if len(sys.argv) > 3 else 200


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode("utf-8", "surrogateescape")
        with open(log_file, "a") as f:
            rec = {"path": self.path, "content_type": self.headers.get("Content-Type"),
                   "body": body}
            f.write(json.dumps(rec) + "\n")
        reply = b"ok" if status < 300 else b"no_service"
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


loopback.serve(Handler, port_file)
