"""A webhook receiver: verify the signature, drop redeliveries, answer fast.

Invora delivers each event at least once (retrying at 0 s, 30 s, 2 min, 15 min, 1 h and 6 h until it gets
a 2xx within 15 s), in no particular order, signed in ``X-Invora-Signature``. The receiver below

* verifies the signature on the raw body — HMAC with the endpoint secret, or an RS256 JWT against
  Invora's published keys — and answers 401 when it does not hold (400 for a signed non-event, 503 when
  the key set cannot be fetched, so that Invora tries again later);
* drops repeats by ``event.dedup_key`` and forgets the key again if handling fails, so that the retry
  is processed;
* hands the event on and answers 200 at once (here: one JSON line on stdout).

Standard library HTTP server only, to show the moving parts; in a web framework the handler body is the
same ten lines.

    INVORA_WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py --port 8080
    INVORA_WEBHOOK_JWKS_URL=https://<issuer>/oauth/v2/keys python examples/webhook_receiver.py

On start it prints one JSON line ``{"url": "http://127.0.0.1:<port>/webhooks"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from invora import webhooks

MAX_BODY = 1 << 20  # Invora's events are small; refuse anything that is not


class Receiver:
    def __init__(self, secret: str | None, jwks_url: str | None) -> None:
        if not secret and not jwks_url:
            raise SystemExit("set INVORA_WEBHOOK_SECRET (HMAC) and/or INVORA_WEBHOOK_JWKS_URL (JWT)")
        # Several secrets, comma-separated, while rotating the endpoint secret.
        self.secret = [s for s in (secret or "").split(",") if s] or None
        self.jwks = webhooks.RemoteJWKS(jwks_url) if jwks_url else None
        self.seen = webhooks.Deduplicator()

    def handle(self, body: bytes, signature: str | None) -> tuple[int, dict[str, Any]]:
        try:
            event = webhooks.verify(body, signature, secret=self.secret, jwks=self.jwks)
        except webhooks.SignatureError as exc:
            return 401, {"error": type(exc).__name__, "message": str(exc)}
        except webhooks.PayloadError as exc:
            return 400, {"error": type(exc).__name__, "message": str(exc)}
        except webhooks.JWKSUnavailable as exc:
            print(f"cannot verify: {exc}", file=sys.stderr)
            return 503, {"error": "JWKSUnavailable"}
        if not self.seen.first(event):
            return 200, {"duplicate": True}
        try:
            process(event)
        except Exception:
            self.seen.forget(event)  # let the redelivery try again
            raise
        return 200, {"duplicate": False}


def process(event: webhooks.Event) -> None:
    """Your code. Keep it quick (queue slow work): Invora waits 15 s at most."""
    line = {"dedup_key": event.dedup_key, "webhook_type": event.webhook_type, "object": dict(event.data)}
    print(json.dumps(line), flush=True)


def serve(receiver: Receiver, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != "/webhooks":
                return self.reply(404, {"error": "not found"})
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self.reply(413, {"error": "body too large"})
            body = self.rfile.read(length)
            try:
                status, answer = receiver.handle(body, self.headers.get(webhooks.SIGNATURE_HEADER))
            except Exception as exc:
                print(f"handler failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                status, answer = 500, {"error": "handler failed"}
            self.reply(status, answer)

        def reply(self, status: int, answer: dict[str, Any]) -> None:
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines would be noise on stdout; never log headers (they hold signatures)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    # SIGTERM (a deploy, a container stop) ends the loop cleanly; shutdown() must run off the serving thread.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(json.dumps({"url": f"http://127.0.0.1:{server.server_address[1]}/webhooks"}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    args = parser.parse_args()
    receiver = Receiver(os.environ.get("INVORA_WEBHOOK_SECRET"), os.environ.get("INVORA_WEBHOOK_JWKS_URL"))
    serve(receiver, args.port)


if __name__ == "__main__":
    main()
