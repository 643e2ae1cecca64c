"""Python SDK for the Invora e-invoicing and billing API.

``import invora`` loads nothing but this file: every public name resolves on first access (PEP 562), so a
program that only imports the package pays neither for grpc (whose import also loads asyncio and
``grpc.aio``) nor for httpx, and message modules load only on the first call of a service. For type
checkers the names are ordinary imports, so a misspelt ``invora.Clinet`` is an error, not ``Any``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from invora import webhooks as webhooks
    from invora._client import AsyncClient as AsyncClient
    from invora._client import Client as Client
    from invora._service import DEFAULT as DEFAULT
    from invora.auth import AuthMetadataPlugin as AuthMetadataPlugin
    from invora.auth import ClientCredentials as ClientCredentials
    from invora.auth import Credentials as Credentials
    from invora.auth import StaticToken as StaticToken
    from invora.decimal import DecimalValue as DecimalValue
    from invora.decimal import from_decimal as from_decimal
    from invora.decimal import to_decimal as to_decimal
    from invora.errors import Aborted as Aborted
    from invora.errors import AlreadyExists as AlreadyExists
    from invora.errors import AuthenticationError as AuthenticationError
    from invora.errors import Cancelled as Cancelled
    from invora.errors import ClientClosedError as ClientClosedError
    from invora.errors import ClientForkedError as ClientForkedError
    from invora.errors import ConfigurationError as ConfigurationError
    from invora.errors import DataLoss as DataLoss
    from invora.errors import DeadlineExceeded as DeadlineExceeded
    from invora.errors import FailedPrecondition as FailedPrecondition
    from invora.errors import Internal as Internal
    from invora.errors import InvalidArgument as InvalidArgument
    from invora.errors import InvoraError as InvoraError
    from invora.errors import NotFound as NotFound
    from invora.errors import OutOfRange as OutOfRange
    from invora.errors import PermissionDenied as PermissionDenied
    from invora.errors import ResourceExhausted as ResourceExhausted
    from invora.errors import RpcError as RpcError
    from invora.errors import Unauthenticated as Unauthenticated
    from invora.errors import Unavailable as Unavailable
    from invora.errors import Unimplemented as Unimplemented
    from invora.errors import Unknown as Unknown
    from invora.hooks import CallEvent as CallEvent
    from invora.hooks import Hook as Hook
    from invora.pagination import AsyncPager as AsyncPager
    from invora.pagination import Pager as Pager
    from invora.retry import Retry as Retry
    from invora.transport import RawResponse as RawResponse

__all__ = [
    "DEFAULT",
    "Aborted",
    "AlreadyExists",
    "AsyncClient",
    "AsyncPager",
    "AuthMetadataPlugin",
    "AuthenticationError",
    "CallEvent",
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
    "Hook",
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

# Where each lazily resolved name lives (tests/test_package.py keeps this and the imports above in step).
_ERRORS = (
    "Aborted AlreadyExists AuthenticationError Cancelled ClientClosedError ClientForkedError ConfigurationError "
    "DataLoss DeadlineExceeded FailedPrecondition Internal InvalidArgument InvoraError NotFound OutOfRange "
    "PermissionDenied ResourceExhausted RpcError Unauthenticated Unavailable Unimplemented Unknown"
)
_LAZY = {
    **dict.fromkeys(_ERRORS.split(), "invora.errors"),
    **dict.fromkeys(("Client", "AsyncClient"), "invora._client"),
    **dict.fromkeys(("AuthMetadataPlugin", "ClientCredentials", "Credentials", "StaticToken"), "invora.auth"),
    **dict.fromkeys(("DecimalValue", "to_decimal", "from_decimal"), "invora.decimal"),
    **dict.fromkeys(("Pager", "AsyncPager"), "invora.pagination"),
    **dict.fromkeys(("CallEvent", "Hook"), "invora.hooks"),
    "DEFAULT": "invora._service",
    "Retry": "invora.retry",
    "RawResponse": "invora.transport",
}
# Optional parts, importable as `invora.webhooks.verify(...)` after a plain `import invora`.
_SUBMODULES = {"webhooks"}

if not TYPE_CHECKING:  # hidden from type checkers, which see the imports above instead

    def __getattr__(name: str) -> object:
        import importlib

        if name in _SUBMODULES:
            return importlib.import_module(f"invora.{name}")
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'invora' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY, *_SUBMODULES})
