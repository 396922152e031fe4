# SPDX-License-Identifier: LGPL-2.1-or-later
# A test HTTP server on 127.0.0.1: a free port, written to PORTFILE (whole, by a
# rename, so that a shell waiting for the file never reads half of it).
import http.server
import os


def serve(handler, port_file, threaded=False):
    cls = http.server.ThreadingHTTPServer if threaded else http.server.HTTPServer
    srv = cls(("127.0.0.1", 0), handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    srv.serve_forever()
