"""Argument parsing, dispatch, error reporting and exit codes of ``invora``.

Exit codes: 0 success; 1 the call ended with a non-OK status (including UNAVAILABLE when the target is
unreachable); 2 usage error (bad flags, unknown method, malformed JSON, invalid configuration such as a
bad org id or target); 3 the token endpoint refused or failed (no RPC was attempted); 70 internal error
(a bug; INVORA_DEBUG=1 shows the traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from invora.cli.common import (
    EXIT_AUTH,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_RPC,
    EXIT_USAGE,
    UsageError,
    common_parent,
)

__all__ = ["build_parser", "main"]

_DESCRIPTION = """\
Invora API from the command line: call any RPC, list with pagination, describe the schema, fetch
tokens, run a local sandbox and load tests. Connection flags fall back to INVORA_* variables."""

_EPILOG = """\
examples:
  invora sandbox --env-file sandbox.env                  # a local gateway; `source sandbox.env` elsewhere
  invora describe simple.invoices                        # RPCs, HTTP rules and scopes
  invora call simple.invoices.get --data '{"key": "..."}'
  invora list simple.invoices --filter text=INV-2026 --output table
  invora schema check --target localhost:50051            # our wire facts vs the server's

secrets: set INVORA_CLIENT_SECRET rather than --client-secret (command lines are visible to other users)

exit codes: 0 ok, 1 RPC error (status printed), 2 usage error, 3 token endpoint error,
  70 internal error (a bug; INVORA_DEBUG=1 shows the traceback), 130 interrupted"""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; ``bench`` comes from :mod:`invora.loadtest.cli`, imported only when it runs."""
    from invora import __version__
    from invora.cli import call, describe, schema, token

    parser = argparse.ArgumentParser(
        prog="invora",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"invora {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parents = [common_parent()]
    call.register(sub, parents)
    describe.register(sub, parents)
    schema.register(sub, parents)
    token.register(sub, parents)
    sub.add_parser(
        "sandbox",
        help="run a local Invora gateway (see `invora sandbox --help`)",
        add_help=False,
    )
    if command == "bench":
        _register_bench(sub, parents)
    else:
        sub.add_parser("bench", help="load-test an RPC (see `invora bench --help`)", add_help=False)
    return parser


def _register_bench(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    import importlib

    try:
        loadtest_cli: Any = importlib.import_module("invora.loadtest.cli")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("invora.loadtest"):
            raise
        raise UsageError(
            "`invora bench` is not available: the load-testing module (invora.loadtest) is not part of "
            "this installation"
        ) from None
    loadtest_cli.register(sub, parents)


# Optional dependencies -> the extra that installs them (pyproject.toml).
_EXTRAS = {
    "hdrh": "bench",
    "cryptography": "sandbox",
    "locust": "locust",
    "h2": "http2",
    "opentelemetry": "otel",
}


# grpc's C core logs through absl straight to file descriptor 2, e.g.
# "I1201 06:12:16.487057   14951 ssl_transport_security.cc:2563] Handshake failed ...". Before absl's
# logging is initialised (older grpc releases never do it) a line has no date, "E0000 00:00:1796121337.808766
# ...", after a first line of its own.
_NATIVE_LOG = re.compile(
    rb"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
)


@contextlib.contextmanager
def _native_logs_dropped() -> Iterator[None]:
    """The command's stderr carries its own messages only. grpc reads GRPC_VERBOSITY once, when it is
    imported (``import invora`` has done that), so its native log lines are filtered out of fd 2 here."""
    try:
        saved = os.dup(2)
        read_end, write_end = os.pipe()
    except OSError:
        yield
        return
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as source:
            for line in source:
                if not _NATIVE_LOG.match(line):
                    os.write(saved, line)

    thread = threading.Thread(target=pump, name="invora-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer goes: the pump drains it and stops
        thread.join(5)
        os.close(saved)


def _first_positional(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg
        if arg == "--":
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (never raises for user errors)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = _first_positional(args_list[:1])
    if command == "sandbox":
        from invora.sandbox.__main__ import main as sandbox_main

        return sandbox_main(args_list[1:], prog="invora sandbox")
    try:
        with _native_logs_dropped():
            return _run(args_list, command)
    except KeyboardInterrupt:
        sys.stderr.write("invora: interrupted\n")
        return 130
    except BrokenPipeError:
        # `invora list ... | head`: the reader left; stop quietly (and keep Python from complaining at exit).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _check_secret_flags(argv: Sequence[str]) -> None:
    """argparse reads ``--client-secret -x...`` as a missing value; say how to pass such a secret."""
    from itertools import pairwise

    from invora.cli.common import FLAGS

    secret = {"--" + f.name for f in FLAGS if f.secret}
    for flag, value in pairwise(argv):
        if flag == "--":
            return
        if flag in secret and value.startswith("-"):
            raise UsageError(
                f"{flag} needs a value; one starting with '-' is written {flag}=VALUE "
                f"(better: set INVORA_{flag[2:].replace('-', '_').upper()}, which other users cannot see)"
            )


def _run(argv: list[str], command: str | None) -> int:
    from invora.errors import AuthenticationError, ConfigurationError, InvoraError

    try:
        _check_secret_flags(argv)
        parser = build_parser(command)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        handler: Callable[[argparse.Namespace], int | None] | None = getattr(
            args, "handler", None
        ) or getattr(args, "func", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        result = handler(args)
        return EXIT_OK if result is None else int(result)
    except UsageError as exc:
        sys.stderr.write(f"invora: error: {exc}\n")
        return EXIT_USAGE
    except ConfigurationError as exc:
        sys.stderr.write(f"invora: error: {exc}\n")
        return EXIT_USAGE
    except AuthenticationError as exc:
        sys.stderr.write(f"invora: authentication failed: {exc}\n")
        return EXIT_AUTH
    except InvoraError as exc:
        from invora.cli._output import print_error

        print_error(exc)
        return EXIT_RPC
    except (BrokenPipeError, KeyboardInterrupt):
        raise  # handled by main()
    except ImportError as exc:  # an optional dependency is missing: say which extra installs it
        extra = _EXTRAS.get((exc.name or "").partition(".")[0])
        if extra is not None:
            sys.stderr.write(
                f"invora: error: this needs the '{extra}' extra: pip install 'invora[{extra}]'\n"
            )
        elif "pip install 'invora[" in str(exc):
            sys.stderr.write(f"invora: error: {exc}\n")
        else:
            return _internal(exc)
        return EXIT_USAGE
    except Exception as exc:
        return _internal(exc)


def _internal(exc: Exception) -> int:
    """A bug: one line by default, the traceback with INVORA_DEBUG=1."""
    if os.environ.get("INVORA_DEBUG"):
        raise exc
    from invora.errors import redact

    sys.stderr.write(
        f"invora: internal error: {type(exc).__name__}: {redact(str(exc))} "
        "(set INVORA_DEBUG=1 for the traceback)\n"
    )
    return EXIT_INTERNAL
