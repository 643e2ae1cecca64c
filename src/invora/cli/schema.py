"""``invora schema pull`` (a server's descriptors by reflection) and ``invora schema check`` (ours vs theirs).

``check`` exits 0 when every service both sides have matches on wire facts, 1 when one differs (or the
server offers no reflection), 2 on usage errors, 3 when the token endpoint fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from invora.cli.common import EXIT_OK, EXIT_RPC, UsageError, client_from_args, resolve

if TYPE_CHECKING:
    from invora import Client
    from invora.schema.compare import SchemaDiff

__all__ = ["register"]


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "schema",
        help="pull the server's schema by reflection, or check ours against it",
        description="Know the server's schema: `pull` writes its FileDescriptorSet (gRPC server reflection); "
        "`check` compares the schema this SDK was built with against a server's or a descriptor set's.",
    )
    actions = p.add_subparsers(dest="schema_command", metavar="ACTION")
    pull = actions.add_parser(
        "pull",
        parents=list(parents),
        help="write the server's FileDescriptorSet (reflection)",
        description="Fetch every service's descriptors through gRPC server reflection (grpc.reflection.v1, "
        "else v1alpha) and write them as one FileDescriptorSet, usable by `buf curl --schema`, "
        "`Client(schema=...)` and `codegen/generate.py --adopt`.",
    )
    pull.add_argument(
        "-o", "--out", metavar="FILE", help="output file (default: stdout, when not a terminal)"
    )
    pull.add_argument("--service", action="append", metavar="NAME", help="only this service (repeatable)")
    pull.set_defaults(handler=run_pull)
    check = actions.add_parser(
        "check",
        parents=list(parents),
        help="compare the compiled-in schema with a server's or an image's",
        description="Compare, for every service both sides have, field names, numbers, types, labels, "
        "oneofs, enums, methods, streaming, HTTP rules and scopes. Exit 0 compatible, 1 incompatible, "
        "2 usage, 3 authentication.",
    )
    check.add_argument("--image", metavar="FILE", help="a FileDescriptorSet instead of a live server")
    check.add_argument("--service", action="append", metavar="NAME", help="only this service (repeatable)")
    check.add_argument("--output", choices=("text", "json"), default="text")
    check.set_defaults(handler=run_check)
    p.set_defaults(handler=lambda _args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def _client(args: argparse.Namespace) -> Client:
    if (resolve(args, "transport") or "grpc") != "grpc":
        raise UsageError("server reflection is a gRPC service: use --transport grpc")
    return client_from_args(args)


def run_pull(args: argparse.Namespace) -> int:
    from invora.schema.reflection import pull

    if args.out is None and sys.stdout.isatty():
        raise UsageError("a FileDescriptorSet is binary: give -o FILE (or redirect stdout)")
    with _client(args) as client:
        fds = pull(client, services=args.service)
    data = fds.SerializeToString(deterministic=True)
    if args.out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        try:
            with open(args.out, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            raise UsageError(f"cannot write {args.out!r}: {exc.strerror}") from None
    services = sum(len(f.service) for f in fds.file)
    where = args.out or "stdout"
    sys.stderr.write(
        f"invora: wrote {len(fds.file)} files, {services} services ({len(data)} bytes) to {where}\n"
    )
    return EXIT_OK


def run_check(args: argparse.Namespace) -> int:
    from invora.schema.reflection import check

    if args.image is not None:
        if args.target is not None:
            raise UsageError("give either --target (a live server) or --image FILE, not both")
        from invora.errors import ConfigurationError

        try:
            report = check(args.image, services=args.service)
        except ConfigurationError as exc:
            raise UsageError(str(exc)) from None
        source = args.image
    else:
        with _client(args) as client:
            report = check(client, services=args.service)
            source = client.target
    if args.output == "json":
        from invora.cli._output import dump_json

        dump_json({"source": source, **report.to_dict()})
    else:
        sys.stdout.write(_text(report, source))
    return EXIT_OK if report.compatible else EXIT_RPC


def _text(report: SchemaDiff, source: str) -> str:
    lines = [f"compared {len(report.common)} services with {source} (expected = this SDK, got = {source})"]
    for service, problems in report.differences.items():
        lines.append(f"\n{service}: {len(problems)} difference{'s' if len(problems) != 1 else ''}")
        lines += [f"  {p}" for p in problems]
    for title, names in (
        ("only in this SDK", report.only_ours),
        ("only on the server", report.only_theirs),
    ):
        if names:
            lines.append(f"\n{title} (not compared): " + ", ".join(names))
    unverified = sum(len(v) for v in report.unverified.values())
    if unverified:
        lines.append(f"\n{unverified} referenced types are not defined by {source} (not compared)")
    lines.append(
        "\n"
        + ("compatible" if report.compatible else f"INCOMPATIBLE: {len(report.differences)} services differ")
    )
    return "\n".join(lines) + "\n"
