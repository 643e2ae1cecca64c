"""Name resolution for the CLI: methods, services and messages, with "did you mean" suggestions.

Only the catalog (plain data) is consulted to resolve a method; generated modules are imported for the one
method or message actually used, which keeps every command's start-up close to ``import invora``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invora.cli.common import UsageError

if TYPE_CHECKING:
    from invora._catalog import MethodInfo, ServiceInfo

__all__ = ["find_descriptor", "find_method", "find_service", "suggest"]


def _method_names() -> list[str]:
    from invora import _catalog

    out: list[str] = []
    for svc in _catalog.services():
        for m in svc.methods.values():
            out += [m.full_name, m.accessor]
    return out


def suggest(word: str, candidates: list[str], n: int = 3) -> str:
    """`` (did you mean: a, b?)`` or an empty string."""
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.6)
    if not close:
        tail = word.lower().replace("/", ".").rsplit(".", 1)[-1]
        close = [c for c in lowered if c.replace("/", ".").endswith("." + tail)][:n] if tail else []
    return f" (did you mean: {', '.join(lowered[c] for c in close)}?)" if close else ""


def find_method(spec: str) -> MethodInfo:
    """``pkg.Service/Method``, ``Service/Method`` (unique short service name) or ``simple.invoices.get``."""
    from invora import _catalog

    text = spec.strip()
    try:
        return _catalog.method(text)
    except LookupError:
        pass
    if "/" in text:  # short service name: SimpleInvoiceService/Get
        svc_name, _, name = text.lstrip("/").partition("/")
        matches = [s for s in _catalog.services() if s.name == svc_name]
        if len(matches) == 1:
            try:
                return matches[0].method(name)
            except LookupError:
                pass
    hint = suggest(text, _method_names())
    raise UsageError(
        f"unknown method {spec!r}{hint}; name it 'package.Service/Method' or by accessor path "
        "('simple.invoices.get'); `invora describe` lists services"
    )


def find_service(name: str) -> ServiceInfo | None:
    from invora import _catalog

    try:
        return _catalog.service(name.strip())
    except LookupError:
        matches = [s for s in _catalog.services() if s.name == name.strip()]
        return matches[0] if len(matches) == 1 else None


def _package_dirs(package: str) -> list[Path]:
    """Directories holding generated modules of a proto package (ours, then installed google.* ones)."""
    import invora._proto

    rel = package.replace(".", "/")
    dirs = [Path(invora._proto.__file__).parent / rel]
    top = package.split(".", 1)[0]
    if top == "google":
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            dirs += [Path(p) for p in spec.submodule_search_locations]
    return [d for d in dirs if d.is_dir()]


def _import_package(package: str) -> list[str]:
    """Import every generated ``*_pb2`` module of ``package``; return the full names it defines."""
    import invora._proto

    names: list[str] = []
    root = Path(invora._proto.__file__).parent
    for directory in _package_dirs(package):
        for path in sorted(directory.glob("*_pb2.py")):
            if directory.is_relative_to(root):
                module_name = "invora._proto." + ".".join(path.relative_to(root).with_suffix("").parts)
            else:
                module_name = package + "." + path.stem
            module: Any = importlib.import_module(module_name)
            fd = module.DESCRIPTOR
            names += [m.full_name for m in fd.message_types_by_name.values()]
            names += [e.full_name for e in fd.enum_types_by_name.values()]
    return names


def find_descriptor(name: str) -> Any | None:
    """The message or enum descriptor for a full name such as ``invora.simple.invoices.v1.Invoice``.

    Nested types (``pkg.Outer.Inner``) work too. Returns None when the name is not a message/enum; raises
    :class:`UsageError` with suggestions when its package exists but the type does not.
    """
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    parts = name.strip().lstrip(".").split(".")
    # The package is the longest prefix with generated modules; try from the longest.
    for cut in range(len(parts) - 1, 0, -1):
        package = ".".join(parts[:cut])
        if not _package_dirs(package):
            continue
        defined = _import_package(package)
        full = ".".join(parts)
        for finder in (pool.FindMessageTypeByName, pool.FindEnumTypeByName):
            try:
                return finder(full)
            except KeyError:
                continue
        raise UsageError(f"no message or enum {full!r} in package {package}{suggest(full, defined)}")
    return None
