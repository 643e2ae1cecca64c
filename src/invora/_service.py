"""Base classes the generated service clients and the accessor tree build on.

Generated ``invora._proto.services.*`` classes subclass :class:`ServiceClient` / :class:`AsyncServiceClient`
and call ``self._invoke("<Rpc>", request, {field: value}, timeout, retry, metadata, org_id, ...)``;
everything behind ``_invoke`` (request building, metadata, retries, pagination, streaming) lives in
:mod:`invora._core`, shared by all services.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from invora.retry import DEFAULT, RetryArg  # re-exported: generated code and invora.DEFAULT use them

if TYPE_CHECKING:
    from invora._core import Binding, Scope

__all__ = ["DEFAULT", "AsyncServiceClient", "Namespace", "RetryArg", "ServiceClient"]


_T = TypeVar("_T")


class Namespace:
    """A node of the accessor tree (``client.billing``); children and services are created on first use."""

    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._nodes: dict[str, Any] = {}

    def _child(self, key: str, cls: Callable[[Scope], _T]) -> _T:
        node = self._nodes.get(key)
        if node is None:
            node = self._nodes[key] = cls(self._scope)
        return node

    def _service(self, key: str, module: str, class_name: str) -> Any:
        node = self._nodes.get(key)
        if node is None:
            cls = getattr(importlib.import_module(module), class_name)
            node = self._nodes[key] = cls(self._scope)
        return node


class _ServiceBase:
    _service_name: ClassVar[str] = ""

    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._bindings: dict[str, Binding] = {}

    def _bind(self, name: str) -> Binding:
        from invora import _catalog

        info = _catalog.service(self._service_name).method(name)
        binding = self._bindings[name] = self._scope.core.binding(info)
        return binding

    def _invoke(
        self,
        name: str,
        request: Any,
        fields: Mapping[str, Any] | None,
        timeout: float | None,
        retry: RetryArg,
        metadata: Sequence[tuple[str, str]] | None,
        org_id: str | None,
        *,
        page_size: int | None = None,
        max_items: int | None = None,
    ) -> Any:
        binding = self._bindings.get(name)
        if binding is None:
            binding = self._bind(name)
        return self._scope.dispatch(
            binding, request, fields, timeout, retry, metadata, org_id, page_size, max_items
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._service_name} {self._scope!r}>"


class ServiceClient(_ServiceBase):
    """Blocking client of one service; methods are generated."""


class AsyncServiceClient(_ServiceBase):
    """asyncio client of one service: unary methods are coroutines, lists and streams async iterators."""
