"""Compare two descriptor sets file by file and list every wire-relevant difference.

Used by the test suite to prove that ``protos/`` compiles to exactly the vendor's published schema:
packages, imports, messages, fields (names, numbers, types, labels, oneofs, json names,
``proto3_optional``), enums, services, methods, streaming flags and method/field options (HTTP rules,
scopes). Source info and comments are ignored; they are ours. The comparator is the package's
(``invora.schema.compare``), the same one ``invora schema check`` uses against a live server.

    python codegen/wirecheck.py codegen/upstream/invora.binpb build/protos.binpb
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from google.api import annotations_pb2, field_behavior_pb2  # noqa: F401  (registers extensions)
from google.protobuf import descriptor_pb2

from invora.schema.compare import diff_messages, diff_sets

__all__ = ["diff_messages", "diff_sets", "main"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("expected", type=pathlib.Path)
    p.add_argument("actual", type=pathlib.Path)
    args = p.parse_args(argv)
    load = descriptor_pb2.FileDescriptorSet.FromString
    problems = diff_sets(load(args.expected.read_bytes()), load(args.actual.read_bytes()))
    for line in problems:
        print(line)
    print(f"{len(problems)} differences", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
