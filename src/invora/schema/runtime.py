"""A schema known only at run time: RPCs the SDK was not built with, called like compiled ones.

A ``FileDescriptorSet`` (pulled by reflection, or ``Client(schema=path_or_set)``) is loaded into a
private descriptor pool, and each service becomes a :class:`~invora._catalog.ServiceInfo` whose methods
carry the facts the client acts on — HTTP rule, scope, read or write, idempotency key, page shape —
decided by the same rules as the generated catalog (:mod:`invora._rules`). So a runtime RPC gets the
same credentials, tenancy, deadlines, error mapping and pagination, and retries only when it is a read
(or deduplicated by a key). Responses are messages of the runtime pool: ``MessageToDict`` works on them.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from invora import _rules
from invora._catalog import MethodInfo, ServiceInfo

if TYPE_CHECKING:
    import pathlib

    from google.protobuf.message import Message

__all__ = ["RuntimeSchema"]


@dataclass(frozen=True, eq=False)
class _RuntimeService(ServiceInfo):
    """A service of a runtime schema: message classes come from its own pool, not generated modules."""

    pool: Any = field(default=None, repr=False)

    def load(self) -> Any:
        return None

    def message_class(self, full_name: str) -> type[Message]:
        cls: type[Message] = message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))
        return cls


class RuntimeSchema:
    """The services of a descriptor set, callable through ``client.invoke``."""

    def __init__(self, source: str | pathlib.Path | bytes | descriptor_pb2.FileDescriptorSet) -> None:
        from invora.schema.reflection import load_set

        fds = load_set(source)
        self.pool = descriptor_pool.DescriptorPool()
        self.files = {f.name: f for f in fds.file}
        added: set[str] = set()
        for f in fds.file:
            self._add(f.name, added)
        services = [(f, s) for f in fds.file for s in f.service]
        paths = _rules.accessor_paths([(f.package, s.name) for f, s in services])
        messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        for f in fds.file:
            _index(messages, f"{'.' + f.package if f.package else ''}", f.message_type)
        self.services: dict[str, ServiceInfo] = {}
        for f, s in services:
            full = f"{f.package}.{s.name}" if f.package else s.name
            svc = _RuntimeService(full, paths[full], f.name, "", pool=self.pool, provenance="runtime")
            for m in s.method:
                svc.methods[m.name] = _method_info(svc, _rules.method_facts(m, messages))
            self.services[full] = svc

    def _add(self, name: str, added: set[str]) -> None:
        """Add a file after its imports; imports the set lacks come from this process (well-known types)."""
        if name in added:
            return
        added.add(name)
        proto = self.files.get(name)
        if proto is None:
            from invora.errors import ConfigurationError

            try:
                found = descriptor_pool.Default().FindFileByName(name)
            except KeyError:
                raise ConfigurationError(
                    f"the descriptor set lacks {name!r}, an import of its files: build it with imports "
                    "(`buf build -o`, `protoc --include_imports`, or `invora schema pull`)"
                ) from None
            proto = descriptor_pb2.FileDescriptorProto.FromString(found.serialized_pb)
        for dep in proto.dependency:
            self._add(dep, added)
        self.pool.Add(proto)

    def method(self, spec: str) -> MethodInfo:
        """By ``pkg.Service/Method`` (or ``/pkg.Service/Method``); LookupError when the set lacks it."""
        svc_name, _, name = spec.strip().lstrip("/").partition("/")
        svc = self.services.get(svc_name)
        if svc is None or not name:
            raise LookupError(
                f"{spec!r} is not in the runtime schema (services: {', '.join(sorted(self.services))})"
            )
        return svc.method(name)


def _index(out: dict[str, descriptor_pb2.DescriptorProto], scope: str, messages: Any) -> None:
    for m in messages:
        full = f"{scope}.{m.name}"
        out[full] = m
        _index(out, full, m.nested_type)


def _method_info(svc: ServiceInfo, facts: dict[str, Any]) -> MethodInfo:
    attr = _rules.snake(facts["name"])
    return MethodInfo.from_data(svc, {**facts, "attr": attr + "_" if keyword.iskeyword(attr) else attr})
