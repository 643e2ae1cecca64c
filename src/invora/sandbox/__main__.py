"""``python -m invora.sandbox``: run a sandbox until SIGINT/SIGTERM.

Once both servers accept connections, the FIRST line of stdout is one JSON object with ``grpc_target``,
``rest_url``, ``token_url``, ``client_id``, ``client_secret`` and ``org_id`` (scripts and CI read it).

``--env-file PATH`` also writes, at that moment, a file that another shell reads with ``source`` to point
the CLI and the SDK at the sandbox (``export INVORA_TARGET=... INVORA_ORG_ID=...``, shell-quoted, mode
0600 as it holds a secret), and removes it when the sandbox stops. A file rather than a line to ``eval``: a server
never ends, so ``$(...)`` around it would never return.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

_DESCRIPTION = """\
Run a local Invora gateway (gRPC + REST + OIDC token endpoint) until Ctrl-C.
Once ready it prints one JSON line: grpc_target, rest_url, token_url, and a
ready tenant's client_id, client_secret and org_id."""

_EPILOG = """\
example (the CLI and the SDK read INVORA_* variables):
  invora sandbox --env-file sandbox.env     # serves until Ctrl-C
  source sandbox.env                        # in another shell: INVORA_TARGET, ..., INVORA_ORG_ID"""


def build_parser(prog: str = "python -m invora.sandbox") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--grpc-port", type=int, default=50051, help="gRPC port (default 50051; 0 picks a free one)"
    )
    p.add_argument(
        "--http-port",
        type=int,
        default=8080,
        help="REST and token endpoint port (default 8080; 0 picks a free one)",
    )
    p.add_argument(
        "--env-file",
        metavar="PATH",
        help="when ready, write `export INVORA_TARGET=... INVORA_TOKEN_URL=... INVORA_CLIENT_ID=... "
        "INVORA_CLIENT_SECRET=... INVORA_ORG_ID=...` to PATH (removed on exit)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--seed", type=int, default=0, help="Simple invoices seeded for the ready tenant (default 0)"
    )
    p.add_argument("--tls-cert", help="PEM certificate: serve gRPC and HTTPS over TLS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument(
        "--token-ttl", type=float, default=43200.0, help="access token lifetime, seconds (default 43200)"
    )
    p.add_argument(
        "--rate-limit", type=float, default=None, help="requests/second per organization (default: unlimited)"
    )
    p.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="server-side delay added to every call, seconds (default 0)",
    )
    p.add_argument(
        "--error-rate", type=float, default=0.0, help="fraction of calls failing with UNAVAILABLE (default 0)"
    )
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
    except OSError as exc:
        print(f"error: cannot start the sandbox: {exc}", file=sys.stderr)
        return 1
    try:
        info = sb.info()
        if args.env_file:
            try:
                _write_env_file(args.env_file, info)
            except OSError as exc:
                print(f"error: cannot write --env-file {args.env_file!r}: {exc.strerror}", file=sys.stderr)
                return 1
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
        if args.env_file:
            print(f"sandbox ready; in another shell: source {shlex.quote(args.env_file)}", file=sys.stderr)
        while not stop.wait(0.5):
            pass
    finally:
        sb.stop()
        if args.env_file:
            _remove(args.env_file)
    return 0


def env_line(info: dict[str, str]) -> str:
    """``export INVORA_TARGET=... INVORA_TOKEN_URL=... INVORA_CLIENT_ID=... INVORA_CLIENT_SECRET=...
    INVORA_ORG_ID=...``, each value shell-quoted: what the CLI and the examples read."""
    values = {
        "INVORA_TARGET": info["grpc_target"],
        "INVORA_TOKEN_URL": info["token_url"],
        "INVORA_CLIENT_ID": info["client_id"],
        "INVORA_CLIENT_SECRET": info["client_secret"],
        "INVORA_ORG_ID": info["org_id"],
    }
    return "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in values.items())


def _write_env_file(path: str, info: dict[str, str]) -> None:
    """Written whole under a temporary name, then renamed: a reader never sees half a file."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the client secret
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"# invora sandbox (pid {os.getpid()}); removed when it stops\n{env_line(info)}\n")
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


if __name__ == "__main__":
    sys.exit(main())
