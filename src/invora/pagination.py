"""Cursor pagination: iterate items or pages of any ``List*`` RPC, one page fetched ahead.

Every List RPC of the API answers ``{repeated items = 1; uint64 total_count = 2; next_page_cursor = 3}``
(the cursor an ``optional string``) and takes the cursor back as
``pagination.cursor``. A pager re-sends the caller's request with each cursor, through the same call
pipeline (deadline, retries, metadata, tenancy, observer) as a single call.

While the caller consumes a page, the next one is already being fetched: a background thread (sync) or a
task (asyncio), never more than one page ahead. A pager is a single pass: items and ``.pages`` draw from
the same page sequence. To resume later, keep ``next_page_cursor`` and pass
``pagination={"cursor": cursor}`` to a new call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

from invora.errors import InvoraError, OutOfRange, Unknown

__all__ = ["AsyncPager", "Pager"]

ItemT = TypeVar("ItemT")
PageT = TypeVar("PageT")


def _shorten(cursor: str) -> str:
    return cursor if len(cursor) <= 48 else cursor[:45] + "..."


def _cursor_error(exc: InvoraError, cursor: str) -> InvoraError:
    """OUT_OF_RANGE on a request that carried a cursor: say that the cursor is the problem."""
    if not isinstance(exc, OutOfRange) or not cursor:
        return exc
    err = OutOfRange(
        f"the server rejected page cursor {_shorten(cursor)!r} (expired or malformed); restart the listing "
        f"without a cursor. Server said: {exc.message}",
        trailing_metadata=exc.trailing_metadata,
        initial_metadata=exc.initial_metadata,
        details=exc.details,
    )
    err.attempts = exc.attempts
    return err


class _PagerBase(Generic[ItemT, PageT]):
    def __init__(
        self,
        request: Any,
        *,
        items_field: str = "items",
        max_items: int | None = None,
        prefetch: bool = True,
        method: str = "",
    ) -> None:
        if max_items is not None and max_items < 0:
            raise ValueError("max_items must be >= 0")
        self._request = request  # owned copy, never the caller's message
        self._items_field = items_field
        self._max_items = max_items
        self.prefetch = prefetch
        self.method = method
        self._last_page: PageT | None = None
        self._started = False
        #: Cursor to resume after the pages handed out so far (None before the first page / after the last).
        self.next_page_cursor: str | None = None
        #: Pages fetched so far (including a prefetched one not yet handed out).
        self.pages_fetched = 0

    def _cursor_of(self, page: Any) -> str:
        return page.next_page_cursor  # type: ignore[no-any-return]

    def _next_request(self, request: Any, cursor: str) -> Any:
        nxt = type(request)()
        nxt.CopyFrom(request)
        nxt.pagination.cursor = cursor
        return nxt

    def _items_of(self, page: Any) -> Any:
        return getattr(page, self._items_field)

    @property
    def total_count(self) -> int | None:
        """``total_count`` of the latest page fetched (None before the first page)."""
        page = self._last_page
        return None if page is None else int(page.total_count)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.method}, pages_fetched={self.pages_fetched}, "
            f"next_page_cursor={self.next_page_cursor!r})"
        )


class _Prefetch:
    """One page being fetched by a daemon thread."""

    __slots__ = ("_done", "_error", "_result")

    def __init__(self, fetch: Callable[[Any], Any], request: Any) -> None:
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(fetch, request), name="invora-prefetch", daemon=True).start()

    def _run(self, fetch: Callable[[Any], Any], request: Any) -> None:
        try:
            self._result = fetch(request)
        except BaseException as exc:
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> Any:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result


class Pager(_PagerBase[ItemT, PageT]):
    """Items across pages (``for item in pager``) or pages (``for page in pager.pages``)."""

    def __init__(self, fetch: Callable[[Any], PageT], request: Any, **kwargs: Any) -> None:
        super().__init__(request, **kwargs)
        self._fetch_page = fetch
        self._pending_first: PageT | None = None
        self._gen: Iterator[PageT] | None = None

    def _fetch(self, request: Any) -> PageT:
        try:
            page = self._fetch_page(request)
        except InvoraError as exc:
            err = _cursor_error(exc, request.pagination.cursor)
            if err is exc:
                raise
            raise err from exc
        self.pages_fetched += 1
        return page

    def _page_gen(self) -> Iterator[PageT]:
        request = self._request
        page = self._pending_first
        self._pending_first = None
        if page is None:
            page = self._fetch(request)
        seen = 0
        max_items = self._max_items
        while True:
            self._last_page = page
            cursor = self._cursor_of(page)
            seen += len(self._items_of(page))
            more = bool(cursor) and (max_items is None or seen < max_items)
            ahead: _Prefetch | None = None
            nxt = None
            if more:
                if cursor == request.pagination.cursor:
                    raise Unknown(f"{self.method}: the server returned the same page cursor twice")
                nxt = self._next_request(request, cursor)
                if self.prefetch:
                    ahead = _Prefetch(self._fetch, nxt)
            self.next_page_cursor = cursor or None
            yield page
            if nxt is None:
                return
            page = ahead.result() if ahead is not None else self._fetch(nxt)
            request = nxt

    @property
    def pages(self) -> Iterator[PageT]:
        """The raw ``ListResponse`` pages."""
        if self._gen is None:
            self._gen = self._page_gen()
        return self._gen

    def __iter__(self) -> Iterator[ItemT]:
        remaining = self._max_items
        for page in self.pages:
            items = self._items_of(page)
            if remaining is None:
                yield from items
                continue
            for item in items:
                if remaining <= 0:
                    return
                remaining -= 1
                yield item
            if remaining <= 0:
                return

    @property
    def total_count(self) -> int | None:
        """``total_count`` reported by the server (fetches the first page if none was fetched yet)."""
        if self._last_page is None and self._pending_first is None and self._gen is None:
            self._pending_first = self._fetch(self._request)
            self._last_page = self._pending_first
        return super().total_count


class AsyncPager(_PagerBase[ItemT, PageT]):
    """``async for item in pager`` / ``async for page in pager.pages``; prefetches with a task."""

    def __init__(self, fetch: Callable[[Any], Awaitable[PageT]], request: Any, **kwargs: Any) -> None:
        super().__init__(request, **kwargs)
        self._fetch_page = fetch
        self._pending_first: PageT | None = None
        self._gen: AsyncIterator[PageT] | None = None

    async def _fetch(self, request: Any) -> PageT:
        try:
            page = await self._fetch_page(request)
        except InvoraError as exc:
            err = _cursor_error(exc, request.pagination.cursor)
            if err is exc:
                raise
            raise err from exc
        self.pages_fetched += 1
        return page

    async def _page_gen(self) -> AsyncIterator[PageT]:
        request = self._request
        page = self._pending_first
        self._pending_first = None
        if page is None:
            page = await self._fetch(request)
        seen = 0
        max_items = self._max_items
        ahead: asyncio.Task[PageT] | None = None
        try:
            while True:
                self._last_page = page
                cursor = self._cursor_of(page)
                seen += len(self._items_of(page))
                more = bool(cursor) and (max_items is None or seen < max_items)
                nxt = None
                if more:
                    if cursor == request.pagination.cursor:
                        raise Unknown(f"{self.method}: the server returned the same page cursor twice")
                    nxt = self._next_request(request, cursor)
                    if self.prefetch:
                        ahead = asyncio.ensure_future(self._fetch(nxt))
                self.next_page_cursor = cursor or None
                yield page
                if nxt is None:
                    return
                if ahead is not None:
                    page, ahead = await ahead, None
                else:
                    page = await self._fetch(nxt)
                request = nxt
        finally:
            if ahead is not None and not ahead.done():
                ahead.cancel()

    @property
    def pages(self) -> AsyncIterator[PageT]:
        if self._gen is None:
            self._gen = self._page_gen()
        return self._gen

    async def _items(self) -> AsyncIterator[ItemT]:
        remaining = self._max_items
        async for page in self.pages:
            for item in self._items_of(page):
                if remaining is not None:
                    if remaining <= 0:
                        return
                    remaining -= 1
                yield item
            if remaining is not None and remaining <= 0:
                return

    def __aiter__(self) -> AsyncIterator[ItemT]:
        return self._items()

    async def fetch_total_count(self) -> int:
        """``total_count`` from the first page (fetching it if needed)."""
        if self._last_page is None and self._pending_first is None and self._gen is None:
            self._pending_first = await self._fetch(self._request)
            self._last_page = self._pending_first
        return self.total_count or 0
