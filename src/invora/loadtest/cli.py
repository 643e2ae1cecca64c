"""``invora bench``: load-test one RPC from the command line.

    invora bench simple.invoices.list --data '{"pagination": {"limit": "20"}}' --concurrency 50 -d 10
    invora bench simple.invoices.create --data @invoice.json --rps 200 --total 5000 --output json

Progress goes to stderr once a second; the summary (``--output text|json|csv``) to stdout. Exit status:
0 when at least one call succeeded, 1 when every call failed, 2 for usage errors, 3 when the token
endpoint refused the credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from invora.cli.common import EXIT_OK, EXIT_RPC, UsageError, client_from_args, read_json, resolve

__all__ = ["register", "run_bench"]

_EPILOG = """\
request templates (--data): placeholders inside JSON strings are filled per call:
  {{uuid}}  {{seq}}  {{choice:a,b,c}}  {{randint:1,100}}  {{now}}
  e.g. --data '{"requestId": "{{uuid}}", "filter": {"textSearch": "{{choice:INV,CRN}}"}}'

modes: without --rps, --concurrency workers call back to back (closed loop: capacity). With --rps, calls
are scheduled at that rate whatever the server does and latency counts from the scheduled time (open
loop: no coordinated omission); --concurrency then caps the calls in flight (default 1000)."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _processes(text: str) -> int:
    """A whole number of processes, or ``auto``: one per core."""
    if text == "auto":
        from invora.loadtest.processes import cores

        return cores()
    return _positive_int(text)


def _seconds(text: str) -> float:
    """``10``, ``10s``, ``500ms``, ``2m``."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            return _positive_float(text[: -len(suffix)]) * units[suffix]
    return _positive_float(text)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("method", help="'package.Service/Method' or accessor path such as simple.invoices.list")
    p.add_argument(
        "-c",
        "--concurrency",
        type=_positive_int,
        help="workers (closed loop, default 50) or max in flight (open loop, default 1000)",
    )
    p.add_argument("--rps", type=_positive_float, help="open loop: schedule this many calls per second")
    p.add_argument(
        "-d", "--duration", type=_seconds, help="how long to run: 10, 10s, 500ms, 2m (default 10s)"
    )
    p.add_argument("-n", "--total", type=_positive_int, help="stop after this many calls")
    p.add_argument(
        "--connections",
        type=_positive_int,
        default=1,
        help="channels (HTTP clients for REST), used round-robin",
    )
    p.add_argument(
        "-p",
        "--processes",
        type=_processes,
        default=1,
        help="worker processes sharing the load, each with its own --connections (auto: one per core); "
        "one merged summary",
    )
    p.add_argument("--timeout", type=_seconds, default=10.0, help="deadline per call (default 10s)")
    p.add_argument(
        "--warmup", type=_seconds, default=None, help="run this long first and discard the results"
    )
    p.add_argument("-o", "--output", choices=("text", "json", "csv"), default="text", help="summary format")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--seed", type=int, default=None, help="seed for {{choice}}/{{randint}} placeholders")


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add the ``bench`` subcommand to the ``invora`` parser."""
    p = sub.add_parser(
        "bench",
        parents=list(parents),
        help="load-test an RPC: concurrency or fixed rate, latency percentiles",
        description="Load-test one RPC: a closed loop at a fixed concurrency or an open loop at a fixed "
        "rate; latency percentiles from an HDR histogram.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(p)
    p.set_defaults(handler=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from invora.cli._resolve import find_method
    from invora.loadtest.engine import DEFAULT_OPEN_LOOP_CONCURRENCY, Plan
    from invora.loadtest.report import format_csv, format_json, format_text
    from invora.loadtest.template import Template, TemplateError

    if resolve(args, "target") is None and resolve(args, "env") is None:
        # Load-testing production by omission would be an incident: the target is always explicit.
        raise UsageError(
            "invora bench needs an explicit --target (or INVORA_TARGET), or --env to load-test an Invora "
            "environment on purpose"
        )
    info = find_method(args.method)
    if info.client_streaming:
        raise UsageError(
            f"{info.full_name} is client-streaming; bench drives unary and server-streaming RPCs"
        )
    data = read_json(args)
    try:
        template = Template(info.request_class, data, seed=args.seed)
    except TemplateError as exc:
        raise UsageError(str(exc)) from None
    concurrency = args.concurrency or (50 if args.rps is None else DEFAULT_OPEN_LOOP_CONCURRENCY)
    duration = args.duration if args.duration is not None or args.total is not None else 10.0
    plan = Plan(
        concurrency=concurrency,
        rps=args.rps,
        duration=duration,
        total=args.total,
        timeout=args.timeout,
        warmup=args.warmup or 0.0,
        progress=None if args.quiet else sys.stderr,
    )
    transport = resolve(args, "transport") or "grpc"
    # No more workers than calls in flight (or calls in all): each needs at least one.
    processes = min(args.processes, concurrency, args.total or concurrency)
    if processes > 1:
        from invora.loadtest.processes import run_processes

        summary = run_processes(args, plan, info.full_name, data, transport, processes, plan.progress)
    else:
        summary = asyncio.run(_bench(args, plan, info, template, transport))
    render = {"text": format_text, "json": format_json, "csv": format_csv}[args.output]
    sys.stdout.write(render(summary))
    sys.stdout.flush()
    return EXIT_OK if summary.ok or not summary.count else EXIT_RPC


async def _bench(args: argparse.Namespace, plan: Any, info: Any, template: Any, transport: str) -> Any:
    from invora.cli.common import credentials_from_args
    from invora.loadtest.engine import run

    credentials = credentials_from_args(args)  # one token source for every channel: fetched once
    clients = []
    try:
        for i in range(args.connections):
            options: dict[str, Any] = {"credentials": credentials, "retry": None}
            if transport == "grpc":
                # A channel of its own (grpc otherwise shares one connection between equal channels).
                options["channel_options"] = {"grpc.use_local_subchannel_pool": 1, "invora.bench.channel": i}
            clients.append(client_from_args(args, asynchronous=True, options=options))
        return await run(plan, clients, info, template, transport=transport)
    finally:
        for client in clients:
            await client.close()
