"""Know the server's schema: provenance, reflection, comparison and a runtime schema.

- :func:`pull` fetches a server's descriptors through gRPC server reflection.
- :func:`check` compares the compiled-in schema with a server's or an image's on wire facts.
- :class:`RuntimeSchema` turns a ``FileDescriptorSet`` into callable methods, so
  ``client.invoke("pkg.Service/Method", {...})`` works for RPCs the SDK was not built with.
- ``Client(schema_check="warn" | "strict")`` checks services whose wire facts we reconstructed, once per
  channel, before their first call (:mod:`invora.schema.guard`).

Everything here is imported on first use; ``import invora`` loads none of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from invora.schema.compare import SchemaDiff
    from invora.schema.errors import ReflectionError, ReflectionUnavailable, SchemaMismatch
    from invora.schema.reflection import check, compiled_set, pull
    from invora.schema.runtime import RuntimeSchema

__all__ = [
    "ReflectionError",
    "ReflectionUnavailable",
    "RuntimeSchema",
    "SchemaDiff",
    "SchemaMismatch",
    "check",
    "compiled_set",
    "pull",
]

_WHERE = {
    "SchemaDiff": "invora.schema.compare",
    "ReflectionError": "invora.schema.errors",
    "ReflectionUnavailable": "invora.schema.errors",
    "SchemaMismatch": "invora.schema.errors",
    "check": "invora.schema.reflection",
    "compiled_set": "invora.schema.reflection",
    "pull": "invora.schema.reflection",
    "RuntimeSchema": "invora.schema.runtime",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'invora.schema' has no attribute {name!r}")
