#!/usr/bin/env python
"""A webhook receiver for development (README, "Webhooks on your machine").

    bin/webhook_receiver.py --port 8299 --secret whsec_... [--count N]

Listens on 127.0.0.1:PORT, verifies each delivery's signature with the
Standard Webhooks library (as a client's receiver should), answers 204 to a
verified one and 400 to anything else, and prints one line per request:
`verified <type> <webhook-id>` or `refused <reason>`. With --count, it exits
after N verified deliveries.
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True, help="the endpoint's signing secret, whsec_...")
    parser.add_argument("--count", type=int, default=0, help="exit after this many verified deliveries")
    options = parser.parse_args()
    webhook = Webhook(options.secret)
    verified = 0

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            nonlocal verified
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                webhook.verify(body, dict(self.headers.items()))
            except WebhookVerificationError as refused:
                print(f"refused {refused}", flush=True)
                self.send_response(400)
            else:
                verified += 1
                print(f"verified {json.loads(body)['type']} {self.headers['webhook-id']}", flush=True)
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    with HTTPServer(("127.0.0.1", options.port), Handler) as server:
        print(f"listening on http://127.0.0.1:{options.port}/", flush=True)
        while not options.count or verified < options.count:
            server.handle_request()


if __name__ == "__main__":
    sys.exit(main())
