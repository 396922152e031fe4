#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# A fault-injecting HTTP proxy on 127.0.0.1 in front of the test S3 server, for
# tests of what cairn does when the server or the network misbehaves. Requests
# keep their Host header, so their signatures still hold.
# Usage: fault-proxy.py PORTFILE UPSTREAM_PORT RULESFILE LOG
# RULESFILE: JSON list of rules, re-read on every request (an absent or empty
# file: pass everything through). Each rule:
#  {"m": "GET|PUT|..|*", "p": "regex on path+query", "a": action, "n": count (-1 = always),
#   "hdr": only requests with this header, ...}
# actions: status (code, xml code), trunc (200, body cut to half, CL adjusted), corrupt (flip a byte),
#  longcl (CL says more than sent, then close), badetag, reset_up (close after reading part of the
#  request body, never forward), reset_down (forward, send headers + half body, close), lostreply
#  (forward, then close with no reply), stall (sleep s seconds, then close), hide (ListObjectsV2: drop
#  <Contents> whose Key matches "k"), duppage (ListObjectsV2 page repeated: replay the previous page's
#  body once), paginate (ListObjectsV2 split into pages of "size" with fake continuation tokens; mode
#  "dup" sends the first page twice, "reverse", "drop" the second), empty (ListObjectsV2: an empty
#  listing, not asking the server), oldinit (ListMultipartUploads: every upload initiated in 2020);
#  skip the "after" first matches.
import http.client, http.server, json, re, socket, sys, threading, time, os

import loopback

port_file, upstream, rules_file, logf = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
lock = threading.Lock()
counts = {}
HOP = {"connection", "keep-alive", "expect", "transfer-encoding", "proxy-connection"}
last_list = {}
lasttext = None
pages = {}
tokseq = [0]


def log(s):
    with lock:
        with open(logf, "a") as f:
            f.write(time.strftime("%H:%M:%S ") + s + "\n")


def pick(method, path, headers):
    global lasttext
    try:
        text = open(rules_file).read()
        rules = json.loads(text)
    except Exception:
        return None
    with lock:
        if text != lasttext:
            counts.clear()
            lasttext = text
    for i, r in enumerate(rules):
        if r.get("m", "*") not in ("*", method):
            continue
        if not re.search(r.get("p", ""), path):
            continue
        if "hdr" in r and r["hdr"] not in headers:
            continue
        if "prob" in r:
            import random
            if random.random() >= r["prob"]:
                continue
        key = json.dumps(r, sort_keys=True)
        with lock:
            seen = counts.get(key, 0)
            counts[key] = seen + 1
        after = r.get("after", 0)
        n = r.get("n", -1)
        if seen < after:
            continue
        if n >= 0 and seen - after >= n:
            continue
        return r
    return None


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def kill(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except Exception:
            pass
        self.close_connection = True
        try:
            self.connection.close()
        except Exception:
            pass

    def reply_xml(self, code, data):
        self.send_response(code)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def relay(self):
        rule = pick(self.command, self.path, self.headers)
        a = rule["a"] if rule else None
        if a:
            log("%s %s %s" % (a, self.command, self.path[:160]))
        n = int(self.headers.get("Content-Length", "0"))
        m = re.search(r"continuation-token=(FAKE[0-9]+)", self.path)
        if m and m.group(1) in pages:
            return self.reply_xml(200, pages[m.group(1)])
        if a == "reset_up":
            if n:
                self.rfile.read(min(n, max(1, n // 2)))
            return self.kill()
        body = self.rfile.read(n) if n else b""
        if a == "fake200":
            self.send_response(200)
            if rule.get("etag"):
                import hashlib
                self.send_header("ETag", '"%s"' % hashlib.md5(body).hexdigest())
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if a == "stall":
            time.sleep(rule.get("s", 300))
            return self.kill()
        if a == "empty":
            return self.reply_xml(200, b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>')
        if a == "status":
            code = rule.get("code", 500)
            xml = rule.get("xml", "InternalError")
            data = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code><Message>injected</Message></Error>" % xml).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/xml")
            if rule.get("date"):
                self.send_header("Date", rule["date"])
            if self.command == "HEAD":
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        up = http.client.HTTPConnection("127.0.0.1", upstream, timeout=300)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        up.request(self.command, self.path, body=body, headers=headers)
        resp = up.getresponse()
        data = resp.read()
        up.close()
        if a == "lostreply":
            return self.kill()
        st = resp.status
        if a == "hide" and st == 200:
            k = rule["k"]
            txt = data.decode()
            txt2 = re.sub(r"<Contents>(?:(?!</Contents>).)*?<Key>[^<]*(" + k + r")[^<]*</Key>.*?</Contents>", "", txt, flags=re.S)
            # KeyCount left as is on purpose
            data = txt2.encode()
        if a == "oldinit" and st == 200:
            data = re.sub(rb"<Initiated>[^<]*</Initiated>", b"<Initiated>2020-01-01T00:00:00.000Z</Initiated>", data)
        if a == "duppage" and st == 200:
            prev = last_list.get(rule.get("p"))
            if prev is not None:
                data = prev
        if "list-type=2" in self.path and st == 200:
            last_list[rule.get("p") if rule else None] = data
            last_list[None] = data
        if a == "paginate" and st == 200:
            txt = data.decode()
            items = re.findall(r"<Contents>.*?</Contents>", txt, flags=re.S)
            head = txt[: txt.find("<Contents>")] if items else txt.replace("</ListBucketResult>", "")
            head = re.sub(r"<IsTruncated>[^<]*</IsTruncated>", "", head)
            head = re.sub(r"<KeyCount>[^<]*</KeyCount>", "", head)
            size = rule.get("size", 2)
            chunks = [items[i:i + size] for i in range(0, len(items), size)] or [[]]
            mode = rule.get("mode", "")
            if mode == "dup" and len(chunks) > 1:
                chunks.insert(1, chunks[0])
            if mode == "reverse":
                chunks.reverse()
            if mode == "drop" and len(chunks) > 1:
                del chunks[1]
            bodies = []
            for i, c in enumerate(chunks):
                last = i == len(chunks) - 1
                tok = "" if last else "<NextContinuationToken>FAKE%d</NextContinuationToken>" % (tokseq[0] + i + 1)
                bodies.append((head + "<KeyCount>%d</KeyCount><IsTruncated>%s</IsTruncated>%s%s</ListBucketResult>" % (len(c), "false" if last else "true", tok, "".join(c))).encode())
            base = tokseq[0]
            for i in range(1, len(bodies)):
                pages["FAKE%d" % (base + i)] = bodies[i]
            tokseq[0] += len(bodies) + 1
            data = bodies[0]
        if a == "trunc" and st in (200, 206):
            data = data[: len(data) // 2]
        if a == "corrupt" and st in (200, 206) and data:
            b = bytearray(data)
            b[len(b) // 2] ^= 0x01
            data = bytes(b)
        self.send_response(st, resp.reason)
        for k, v in resp.getheaders():
            kl = k.lower()
            if kl in HOP:
                continue
            if kl == "content-length" and self.command != "HEAD":
                continue
            if kl == "etag" and a == "badetag":
                v = '"0123456789abcdef0123456789abcdef"'
            self.send_header(k, v)
        if self.command == "HEAD":
            self.end_headers()
            return
        if a == "longcl":
            self.send_header("Content-Length", str(len(data) + 1000))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            return self.kill()
        if a == "reset_down":
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            return self.kill()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay

    def log_message(self, *args):
        pass


loopback.serve(H, port_file, threaded=True)
