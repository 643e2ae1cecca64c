"""Every failure the SDK raises, one class per gRPC status, with the ``google.rpc.Status`` details unpacked.

The same classes come out of the gRPC transport (:func:`from_grpc_error`) and the REST transport
(:func:`from_http`), so application code catches ``invora.NotFound`` whatever the wire. Details are parsed
lazily and defensively: a malformed ``grpc-status-details-bin`` trailer or JSON body never hides the
original status and message. Messages are scrubbed of bearer tokens, JWTs and client secrets.

Hierarchy: :class:`InvoraError` ← :class:`RpcError` (a call ended with a status) ← one class per code;
local failures (:class:`ConfigurationError`, :class:`AuthenticationError`, :class:`ClientForkedError`)
derive from :class:`InvoraError` directly.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import grpc
from google.protobuf.message import Message

__all__ = [
    "Aborted",
    "AlreadyExists",
    "AuthenticationError",
    "Cancelled",
    "ClientClosedError",
    "ClientForkedError",
    "ConfigurationError",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "InvoraError",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "RpcError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "code_from_int",
    "error_class",
    "from_grpc",
    "from_grpc_error",
    "from_http",
    "from_status",
    "http_status_for",
    "redact",
    "register_secret",
]

Metadata = tuple[tuple[str, Any], ...]

# gRPC code -> HTTP status, as documented by the API (codes it does not list follow google.rpc.Code).
_HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

# HTTP status -> gRPC code when a REST body carries no status of its own (google.rpc.Code's mapping).
_CODE_FOR_HTTP: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

_CODE_BY_NUMBER: dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}
_CODE_BY_NAME: dict[str, grpc.StatusCode] = {c.name: c for c in grpc.StatusCode}

_DETAILS_KEY = "grpc-status-details-bin"
_MAX_ERROR_BODY = 4 * 1024 * 1024  # a google.rpc.Status JSON body; anything larger is not one
_VALIDATION_ERROR = "invora.documents.v2.ValidationError"
# Modules that register detail types not loaded by default (resolved only when such a detail arrives).
_DETAIL_MODULES = {_VALIDATION_ERROR: "invora._proto.invora.documents.v2.models_pb2"}

# JWTs and ``client_secret=`` form values are secrets whatever their context; a bearer token only when
# it looks like one (a long run of token characters), so that "missing bearer token" stays readable.
# A pattern, not a compiled regex: compiling it takes ~1 ms, paid by the first error rather than at import
# (``re`` caches it from then on).
_SECRETS = (
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{16,}"
    r"|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
    r"|(client_secret=)[^&\s\"']+"
)
# The exact tokens and client secrets this process holds (registered by invora.auth): scrubbed wherever
# they appear, with or without "Bearer ", whatever the server or a library did to the text around them.
_KNOWN: dict[str, None] = {}
_KNOWN_MAX = 256
_known_re: re.Pattern[str] | None = None
_known_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Have :func:`redact` scrub ``value`` (a token or client secret) from every message from now on."""
    global _known_re
    if not isinstance(value, str) or len(value) < 6:
        return  # too short to scrub without garbling ordinary words (and too short to be a real secret)
    with _known_lock:
        if value in _KNOWN:
            return
        _KNOWN[value] = None
        while len(_KNOWN) > _KNOWN_MAX:  # oldest first: tokens rotate, the newest are the live ones
            del _KNOWN[next(iter(_KNOWN))]
        ordered = sorted(_KNOWN, key=len, reverse=True)
        _known_re = re.compile("|".join(re.escape(v) for v in ordered))


def redact(text: str) -> str:
    """``text`` without the secrets this process knows, bearer tokens, JWTs or ``client_secret=`` values."""
    known = _known_re
    if known is not None:
        text = known.sub("***", text)

    def sub(m: re.Match[str]) -> str:
        return (m.group(1) or m.group(2) or "") + "***"

    return re.sub(_SECRETS, sub, text)


class RedactingFilter(logging.Filter):
    """Scrubs :func:`redact`'s secrets from a record's message and traceback (installed on ``invora``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return True


logging.getLogger("invora").addFilter(RedactingFilter())


def http_status_for(code: grpc.StatusCode) -> int:
    return _HTTP_STATUS.get(code, 500)


def code_from_int(value: int) -> grpc.StatusCode:
    return _CODE_BY_NUMBER.get(value, grpc.StatusCode.UNKNOWN)


class InvoraError(Exception):
    """Base of every SDK error. Server errors carry the status code, message and unpacked details."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str = "",
        *,
        http_status: int | None = None,
        trailing_metadata: Sequence[tuple[str, Any]] | None = None,
        initial_metadata: Sequence[tuple[str, Any]] | None = None,
        status_details: bytes | None = None,
        details: Sequence[Message] | None = None,
        debug: str | None = None,
        request_not_sent: bool = False,
        retry_delay: float | None = None,
        method: str | None = None,
    ) -> None:
        self.message = redact(message)
        super().__init__(self.message)
        self.http_status: int = http_status if http_status is not None else http_status_for(self.code)
        self.trailing_metadata: Metadata = tuple(trailing_metadata or ())
        self.initial_metadata: Metadata = tuple(initial_metadata or ())
        self.debug = redact(debug) if debug else None
        #: ``pkg.Service/Method`` of the failed call, when known.
        self.method = method
        #: True when the transport knows the request never left the client (connection not established):
        #: the one case where a non-idempotent write may be retried safely.
        self.request_not_sent = request_not_sent
        self._status_details = status_details
        self._details: list[Message] | None = list(details) if details is not None else None
        self._retry_delay_hint = retry_delay
        #: Why the status details could not be parsed, if they could not.
        self.details_error: str | None = None
        #: Attempts made before this error was raised (set by the retry loop).
        self.attempts = 1
        #: The id the SDK gave the call (its ``x-request-id``), set when the error leaves the call pipeline.
        self.request_id: str | None = None

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}" if self.message else self.code.name
        if self.method:
            text += f" [{self.method}]"
        # BadRequest violations and Invora's ValidationErrors often say the same thing: list each once, and
        # not again when the message already does.
        found = [f"{v.field}: {v.description}" for v in self.field_violations]
        found += [f"{v.field}: {v.message}" for v in self.validation_errors]
        extra = [e for e in dict.fromkeys(found) if e not in self.message][:5]
        if extra:
            text = redact(f"{text} ({'; '.join(extra)})")
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.name}, message={self.message!r})"

    # -- details ---------------------------------------------------------------------------------------
    @property
    def details(self) -> list[Message]:
        """Unpacked ``google.rpc.Status.details`` (``Any`` kept as-is when its type is unknown)."""
        if self._details is None:
            self._details = []
            raw = self._status_details
            if raw is None:
                for key, value in self.trailing_metadata:
                    if key == _DETAILS_KEY:
                        raw = value if isinstance(value, bytes) else str(value).encode()
                        break
            if raw is not None:
                try:
                    self._details = _unpack_status_bytes(raw)
                except Exception as exc:  # malformed details never mask the error itself
                    self.details_error = f"{type(exc).__name__}: {exc}"
        return self._details

    @property
    def server_request_id(self) -> str | None:
        """The request or trace id the server gave the failed call: ``google.rpc.RequestInfo.request_id``,
        else an ``x-request-id`` / ``x-trace-id`` response header; None when absent or not a short
        printable token (the server's text is shown, never interpreted)."""
        for d in self._find("google.rpc.RequestInfo"):
            if _id_like(d.request_id):
                return str(d.request_id)
        for key in _SERVER_ID_KEYS:
            for k, v in (*self.initial_metadata, *self.trailing_metadata):
                if k == key and isinstance(v, str) and _id_like(v):
                    return v
        return None

    def _find(self, full_name: str) -> list[Any]:
        return [d for d in self.details if d.DESCRIPTOR.full_name == full_name]

    @property
    def error_info(self) -> Any | None:
        """The first ``google.rpc.ErrorInfo`` (``reason``, ``domain``, ``metadata``), if any."""
        found = self._find("google.rpc.ErrorInfo")
        return found[0] if found else None

    @property
    def reason(self) -> str | None:
        """``ErrorInfo.reason``, if any."""
        info = self.error_info
        return info.reason if info is not None else None

    @property
    def field_violations(self) -> list[Any]:
        """``google.rpc.BadRequest.FieldViolation`` entries across all BadRequest details."""
        return [v for d in self._find("google.rpc.BadRequest") for v in d.field_violations]

    @property
    def validation_errors(self) -> list[Any]:
        """``invora.documents.v2.ValidationError`` details (document validation failures)."""
        return self._find(_VALIDATION_ERROR)

    @property
    def retry_delay(self) -> float | None:
        """Server-suggested delay before retrying (``google.rpc.RetryInfo`` or HTTP ``Retry-After``)."""
        for d in self._find("google.rpc.RetryInfo"):
            delay = d.retry_delay
            return max(0.0, float(delay.seconds + delay.nanos / 1e9))
        return self._retry_delay_hint


_SERVER_ID_KEYS = ("x-request-id", "x-trace-id")


def _id_like(value: str) -> bool:
    return 0 < len(value) <= 128 and value.isascii() and value.isprintable() and " " not in value


class RpcError(InvoraError):
    """A call ended with a non-OK status; subclasses name the status."""


class InvalidArgument(RpcError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class Unauthenticated(RpcError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(RpcError):
    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(RpcError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(RpcError):
    code = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhausted(RpcError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(RpcError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(RpcError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(RpcError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(RpcError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Unavailable(RpcError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(RpcError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(RpcError):
    code = grpc.StatusCode.INTERNAL


class Cancelled(RpcError):
    code = grpc.StatusCode.CANCELLED


class Unknown(RpcError):
    code = grpc.StatusCode.UNKNOWN


class DataLoss(RpcError):
    code = grpc.StatusCode.DATA_LOSS


class _LocalError(InvoraError):
    """Raised by the SDK itself (no server status): the message is the whole story."""

    def __str__(self) -> str:
        return self.message


class AuthenticationError(_LocalError):
    """The token endpoint failed (HTTP error, timeout, unreadable answer): no token could be obtained.

    ``http_status`` / ``status`` is the endpoint's HTTP status (0 when it never answered) and ``error``
    the OAuth ``error`` code when it sent one. Distinct from :class:`Unauthenticated`, which is the API
    refusing a token.
    """

    code = grpc.StatusCode.UNAUTHENTICATED

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        status = http_status if http_status is not None else status
        super().__init__(message, http_status=status if status is not None else 0, details=[])
        self.status = self.http_status
        self.error = error


class ConfigurationError(_LocalError, ValueError):
    """Invalid client configuration or call input, detected before any network traffic."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("details", [])
        super().__init__(message, **kwargs)


class ClientForkedError(_LocalError, RuntimeError):
    """A client whose channels were opened in a parent process was used after ``fork()``."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("details", [])
        super().__init__(message, **kwargs)


class ClientClosedError(_LocalError, RuntimeError):
    """The client was closed; its channels are gone."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("details", [])
        super().__init__(message, **kwargs)


_CLASSES: tuple[type[RpcError], ...] = (
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Unavailable,
    DeadlineExceeded,
    Internal,
    Cancelled,
    Unknown,
    DataLoss,
)
# The one registry from status code to class.
_BY_CODE: dict[grpc.StatusCode, type[RpcError]] = {cls.code: cls for cls in _CLASSES}


def error_class(code: grpc.StatusCode) -> type[RpcError]:
    """The exception class for a status code (``Unknown`` for codes without one, e.g. OK)."""
    return _BY_CODE.get(code, Unknown)


def from_grpc_error(
    err: grpc.RpcError, method: str | None = None, *, request_not_sent: bool = False
) -> RpcError:
    """Map a ``grpc.RpcError`` (sync or aio) to its :class:`RpcError` subclass (returned, not raised).

    Whether the request left the client is for the transport to say (``request_not_sent``): it knows
    whether the channel was connected; the status message is the server's to choose and decides nothing.
    """
    code: Any
    try:
        code = err.code()
        message = err.details() or ""
    except Exception:
        code, message = grpc.StatusCode.UNKNOWN, str(err)
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    debug: str | None = None
    if not isinstance(err, grpc.Future):  # a stream's rendezvous can block here: finished errors only
        try:
            debug = err.debug_error_string()  # type: ignore[attr-defined]
        except Exception:
            debug = None
    return error_class(code)(
        message,
        trailing_metadata=_safe_md(err, "trailing_metadata"),
        initial_metadata=_safe_md(err, "initial_metadata"),
        debug=debug,
        request_not_sent=request_not_sent,
        method=method,
    )


from_grpc = from_grpc_error


def from_status(
    status: Any, *, trailing_metadata: Sequence[tuple[str, Any]] = (), method: str | None = None
) -> RpcError:
    """The error for a ``google.rpc.Status`` message."""
    return error_class(code_from_int(status.code))(
        status.message,
        trailing_metadata=trailing_metadata,
        status_details=status.SerializeToString(),
        method=method,
    )


def _safe_md(err: grpc.RpcError, attr: str) -> Metadata:
    try:
        md = getattr(err, attr)()
    except Exception:
        return ()
    if not md:
        return ()
    try:
        return tuple((m[0], m[1]) for m in md)
    except Exception:
        return ()


def _unpack_status_bytes(raw: bytes) -> list[Message]:
    from google.rpc import status_pb2

    status = status_pb2.Status.FromString(raw)
    return [_unpack_any(a) for a in status.details]


def _unpack_any(any_msg: Any) -> Message:
    from google.protobuf import descriptor_pool, message_factory

    _ensure_detail_types(any_msg.type_url)
    name = any_msg.type_url.rpartition("/")[2]
    try:
        desc = descriptor_pool.Default().FindMessageTypeByName(name)
        out = message_factory.GetMessageClass(desc)()
        if any_msg.Unpack(out):
            return out
    except Exception:  # unknown or undecodable: keep the Any
        pass
    return any_msg  # type: ignore[no-any-return]


def _ensure_detail_types(type_url: str) -> None:
    import importlib

    from google.rpc import error_details_pb2  # noqa: F401  (registers google.rpc.* details)

    module = _DETAIL_MODULES.get(type_url.rpartition("/")[2])
    if module is not None:
        importlib.import_module(module)


# -- REST -----------------------------------------------------------------------------------------------
def from_http(
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    headers: Mapping[str, str] | None = None,
    method: str | None = None,
) -> RpcError:
    """The error for an HTTP response: from a JSON ``google.rpc.Status`` (``@type`` details) when the body
    is one, else the class for the HTTP status with the body's first bytes in the message."""
    data: Any = None
    text = ""
    if isinstance(body, Mapping):
        data = body
    elif body:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        from invora import _json  # here, not at import: a gRPC-only program never loads json

        try:
            data = _json.loads(body, max_bytes=_MAX_ERROR_BODY, what="the error body")
        except ValueError:
            data = None
    retry_after = _retry_after(headers)
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        data = data["error"]  # {"error": {code, message, status, details}} envelope
    if isinstance(data, dict) and ("message" in data or "code" in data or "details" in data):
        code = _code_from_json(data, status)
        message = data.get("message")
        details, problem = _details_from_json(data.get("details"))
        err = error_class(code)(
            message if isinstance(message, str) else "",
            http_status=status,
            details=details,
            retry_delay=retry_after,
            method=method,
        )
        err.details_error = problem
        return err
    code = _CODE_FOR_HTTP.get(status) or (
        grpc.StatusCode.INTERNAL if status >= 500 else grpc.StatusCode.UNKNOWN
    )
    snippet = " ".join(text[:200].split())
    message = f"HTTP {status}: " + (snippet or "(empty body)")
    return error_class(code)(message, http_status=status, details=[], retry_delay=retry_after, method=method)


def _code_from_json(data: Mapping[str, Any], status: int) -> grpc.StatusCode:
    raw = data.get("code")
    # Some gateways put the HTTP status in "code": trust it only when it is a gRPC code (1..16).
    if isinstance(raw, int) and 0 < raw < 17:
        return _CODE_BY_NUMBER[raw]
    for key in ("status", "code"):
        name = data.get(key)
        if isinstance(name, str) and name.upper() in _CODE_BY_NAME and name.upper() != "OK":
            return _CODE_BY_NAME[name.upper()]
    return _CODE_FOR_HTTP.get(status) or (
        grpc.StatusCode.INTERNAL if status >= 500 else grpc.StatusCode.UNKNOWN
    )


def _details_from_json(raw: Any) -> tuple[list[Message], str | None]:
    if not raw:
        return [], None
    if not isinstance(raw, list):
        return [], f"details is {type(raw).__name__}, not a list"
    from google.protobuf import any_pb2, json_format

    out: list[Message] = []
    problems: list[str] = []
    for item in raw:
        try:
            type_url = item.get("@type", "") if isinstance(item, dict) else ""
            _ensure_detail_types(type_url)
            holder = any_pb2.Any()
            json_format.ParseDict(item, holder, ignore_unknown_fields=True)
            out.append(_unpack_any(holder))
        except Exception as exc:  # keep the rest; never mask the error
            problems.append(f"{type(exc).__name__}: {exc}")
    return out, "; ".join(problems) or None


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: ignored (the API sends RetryInfo when it means it)
