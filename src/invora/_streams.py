"""Server and bidi streams over a transport's stream call: started lazily, with one transparent token
refresh when the first response fails with UNAUTHENTICATED (a bidi request iterator cannot be replayed, so
only server streams get it). Streams are not retried and not reported to hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invora._attempts import REQUEST_ID_KEY, new_request_id
from invora.errors import InvoraError, Unauthenticated

if TYPE_CHECKING:
    from invora._core import Binding, _CoreBase
    from invora.auth import AuthMetadata
    from invora.transport import Metadata

__all__ = ["AsyncStream", "Stream"]


class StreamBase:
    """What a sync and an async stream share: the opening call, and the one transparent token refresh
    when the first response fails with UNAUTHENTICATED (a bidi request iterator cannot be replayed, so
    only server streams get it)."""

    def __init__(
        self,
        core: _CoreBase,
        b: Binding,
        req: Any,
        timeout: float,
        md: Metadata,
        client_streaming: bool,
        rid: str = "",
    ):
        self._core = core
        self._b = b
        self._req = req
        self._timeout = timeout
        self._rid = rid or new_request_id()
        self._md = (*md, (REQUEST_ID_KEY, self._rid))
        self._call: Any = None
        self._amd: AuthMetadata = ()
        self._received = False
        creds = core.credentials
        self._auth_retry = creds is not None and creds.refreshable and not client_streaming

    def _open(self, amd: AuthMetadata | None) -> None:
        md = self._md
        if amd is not None:
            self._amd = amd
            md = amd + md
        self._call = self._b.call(self._req, self._timeout, md)

    def _refresh(self) -> bool:
        """After UNAUTHENTICATED: whether to reopen (the token was invalidated) or raise."""
        if self._received or not self._auth_retry:
            return False
        self._auth_retry = False
        self._core.credentials.invalidate(self._amd)  # type: ignore[union-attr]
        return True

    def cancel(self) -> bool:
        return bool(self._call.cancel()) if self._call is not None else False


class Stream(StreamBase):
    """A server or bidi stream: iterate responses."""

    def _start(self) -> None:
        creds = self._core.credentials
        self._open(creds.metadata() if creds is not None else None)

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Any:
        if self._call is None:
            self._start()
        try:
            try:
                item = next(self._call)
            except Unauthenticated:
                if not self._refresh():
                    raise
                self._start()
                item = next(self._call)
        except InvoraError as exc:
            exc.request_id = self._rid
            raise
        self._received = True
        return item

    def initial_metadata(self) -> tuple[tuple[str, Any], ...]:
        if self._call is None:
            self._start()
        return self._call.initial_metadata()  # type: ignore[no-any-return]

    def trailing_metadata(self) -> tuple[tuple[str, Any], ...]:
        return self._call.trailing_metadata() if self._call is not None else ()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class AsyncStream(StreamBase):
    """The async stream; the call starts on the first ``__anext__`` (inside the loop)."""

    async def _start(self) -> None:
        creds = self._core.credentials
        self._open(await creds.ametadata() if creds is not None else None)

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        if self._call is None:
            await self._start()
        try:
            try:
                item = await self._call.__anext__()
            except Unauthenticated:
                if not self._refresh():
                    raise
                await self._start()
                item = await self._call.__anext__()
        except InvoraError as exc:
            exc.request_id = self._rid
            raise
        self._received = True
        return item

    async def initial_metadata(self) -> tuple[tuple[str, Any], ...]:
        if self._call is None:
            await self._start()
        return await self._call.initial_metadata()  # type: ignore[no-any-return]

    async def trailing_metadata(self) -> tuple[tuple[str, Any], ...]:
        return await self._call.trailing_metadata() if self._call is not None else ()
