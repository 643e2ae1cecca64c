"""Argument parsing and dispatch for ``invora``; error reporting and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from invora.cli.common import EXIT_USAGE, UsageError, common_parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="invora", description="Invora API command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parents = [common_parent()]
    sub.add_parser("call", parents=parents, help="call one RPC and print the response as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        raise UsageError(f"{args.command}: not implemented yet")
    except UsageError as exc:
        print(f"invora: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
