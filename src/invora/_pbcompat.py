"""The few protobuf APIs that differ across the supported runtimes (protobuf 5.29 to 7.x).

``FieldDescriptor.is_repeated`` arrived in protobuf 6.31 and ``FieldDescriptor.label`` is gone in 7.x, so
code asks :func:`is_repeated` instead of either (tests/test_package.py keeps it that way). The check is on
the field itself rather than on the ``FieldDescriptor`` class, so importing this module (which the client
does) does not load ``google.protobuf.descriptor`` and the upb runtime before the first call needs them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_repeated"]

_LABEL_REPEATED = 3  # FieldDescriptor.LABEL_REPEATED: descriptor.proto's LABEL_REPEATED, fixed on the wire


def is_repeated(field: Any) -> bool:
    """Whether ``field`` (a ``FieldDescriptor``) is a repeated or map field."""
    try:
        return bool(field.is_repeated)
    except AttributeError:  # protobuf < 6.31
        return bool(field.label == _LABEL_REPEATED)
