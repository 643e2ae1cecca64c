"""The schema-derived rules (names, reads, idempotency, pagination): one implementation, in the package.

The client needs the same rules at run time for RPCs it was not built with (``invora.schema``), so they
live in ``src/invora/_rules.py``; this module re-exports them for the generators and their tests.
"""

from __future__ import annotations

from invora._rules import (
    ACCESSOR_NAMES,
    FDP,
    IDEMPOTENCY_FIELDS,
    SCOPE_EXTENSION,
    accessor_paths,
    decode_scope,
    http_rule,
    idempotency_key,
    is_read,
    method_facts,
    page_shape,
    snake,
)

__all__ = [
    "ACCESSOR_NAMES",
    "FDP",
    "IDEMPOTENCY_FIELDS",
    "SCOPE_EXTENSION",
    "accessor_paths",
    "decode_scope",
    "http_rule",
    "idempotency_key",
    "is_read",
    "method_facts",
    "page_shape",
    "snake",
]
