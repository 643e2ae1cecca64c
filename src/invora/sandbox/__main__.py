"""``python -m invora.sandbox``: run a sandbox until SIGINT/SIGTERM.

Once both servers accept connections, the FIRST line of stdout is one JSON object with ``grpc_target``,
``rest_url``, ``token_url``, ``client_id``, ``client_secret`` and ``org_id`` (scripts and CI read it).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType


def build_parser(prog: str = "python -m invora.sandbox") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run a local Invora gateway (gRPC + REST + OIDC).")
    p.add_argument("--grpc-port", type=int, default=50051, help="gRPC port (0 picks a free one)")
    p.add_argument("--http-port", type=int, default=8080, help="REST/OIDC port (0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--seed", type=int, default=0, help="Simple invoices seeded for the default tenant")
    p.add_argument("--tls-cert", help="PEM certificate: serve gRPC and HTTPS over TLS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--token-ttl", type=float, default=43200.0, help="access token lifetime, seconds")
    p.add_argument("--rate-limit", type=float, default=None, help="requests/second per organization")
    p.add_argument(
        "--latency", type=float, default=0.0, help="server-side delay added to every call, seconds"
    )
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction of calls failing with UNAVAILABLE")
    return p


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m invora.sandbox") -> int:
    args = build_parser(prog).parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        print("error: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if not 0.0 <= args.error_rate <= 1.0:
        print("error: --error-rate must be between 0 and 1", file=sys.stderr)
        return 2
    tls = None
    if args.tls_cert:
        with open(args.tls_cert, "rb") as c, open(args.tls_key, "rb") as k:
            tls = (c.read(), k.read())
    try:
        from invora.sandbox.app import Sandbox
    except ImportError as exc:  # cryptography missing
        print(
            f"error: the sandbox needs the 'sandbox' extra: pip install 'invora[sandbox]' ({exc})",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        sb = Sandbox(
            grpc_port=args.grpc_port,
            http_port=args.http_port,
            host=args.host,
            seed=args.seed,
            tls=tls,
            token_ttl=args.token_ttl,
            rate_limit=args.rate_limit,
            latency=args.latency,
            error_rate=args.error_rate,
        ).start()
    except ImportError as exc:  # cryptography missing
        print(
            f"error: the sandbox needs the 'sandbox' extra: pip install 'invora[sandbox]' ({exc})",
            file=sys.stderr,
        )
        return 2
    except (OSError, RuntimeError) as exc:  # grpc reports a port it cannot bind as RuntimeError
        print(
            f"error: cannot start the sandbox on {args.host} (gRPC port {args.grpc_port}, HTTP port "
            f"{args.http_port}): {exc}",
            file=sys.stderr,
        )
        return 1
    try:
        sys.stdout.write(json.dumps(sb.info()) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
