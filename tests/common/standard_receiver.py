"""A webhook receiver that verifies each delivery with the Standard Webhooks
reference library (`standardwebhooks` on PyPI) and appends one JSON line per request
to OUT: {"id", "type", "verified", "error"}. Answers 204 when verified, 400 if not.

usage: standard_receiver.py PORT SECRET OUT
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook

port, secret, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
hook = Webhook(secret)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        line = {"id": self.headers.get("webhook-id")}
        try:
            payload = hook.verify(body, dict(self.headers))
            line.update(verified=True, type=payload["type"])
            status = 204
        except Exception as e:  # any failure is a rejection, recorded for the test
            line.update(verified=False, error=repr(e))
            status = 400
        with open(out, "a") as f:
            f.write(json.dumps(line) + "\n")
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", port), Handler).serve_forever()
