"""Python SDK for the Invora e-invoicing and billing API.

``import invora`` loads no generated schema module: message classes are imported on the first call of
a service, so start-up stays close to the cost of ``import grpc``.
"""

from __future__ import annotations

from typing import Any

from invora._client import AsyncClient, Client
from invora._service import DEFAULT
from invora.auth import AuthMetadataPlugin, ClientCredentials, Credentials, StaticToken
from invora.errors import (
    Aborted,
    AlreadyExists,
    AuthenticationError,
    Cancelled,
    ClientClosedError,
    ClientForkedError,
    ConfigurationError,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    InvoraError,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    RpcError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
)
from invora.pagination import AsyncPager, Pager
from invora.retry import Retry
from invora.transport import RawResponse

__version__ = "0.1.0"

__all__ = [
    "DEFAULT",
    "Aborted",
    "AlreadyExists",
    "AsyncClient",
    "AsyncPager",
    "AuthMetadataPlugin",
    "AuthenticationError",
    "Cancelled",
    "Client",
    "ClientClosedError",
    "ClientCredentials",
    "ClientForkedError",
    "ConfigurationError",
    "Credentials",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "InvoraError",
    "NotFound",
    "OutOfRange",
    "Pager",
    "PermissionDenied",
    "RawResponse",
    "ResourceExhausted",
    "Retry",
    "RpcError",
    "StaticToken",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
]

# Helpers owned by other modules, resolved on first access so they cost nothing until used.
_LAZY = {"DecimalValue": "invora.decimal", "to_decimal": "invora.decimal", "from_decimal": "invora.decimal"}
# Optional parts, importable as `invora.webhooks.verify(...)` after a plain `import invora`.
_SUBMODULES = {"webhooks"}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"invora.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'invora' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
