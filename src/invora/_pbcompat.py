"""The few protobuf APIs that differ across the supported runtimes (protobuf 5.29 to 7.x).

``FieldDescriptor.is_repeated`` arrived in protobuf 6.31 and ``FieldDescriptor.label`` is gone in 7.x, so
code asks :func:`is_repeated` instead of either (tests/test_package.py keeps it that way).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor

__all__ = ["is_repeated"]

if hasattr(FieldDescriptor, "is_repeated"):

    def is_repeated(field: Any) -> bool:
        """Whether ``field`` (a ``FieldDescriptor``) is a repeated or map field."""
        return bool(field.is_repeated)

else:  # protobuf < 6.31

    def is_repeated(field: Any) -> bool:
        """Whether ``field`` (a ``FieldDescriptor``) is a repeated or map field."""
        return bool(field.label == FieldDescriptor.LABEL_REPEATED)
