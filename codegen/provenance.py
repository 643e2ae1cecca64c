"""Where each file's wire facts come from: a vendor build, or our reconstruction.

A wrong field number fails silently (the server decodes a different field), so the catalog says, for
every file, whether its names and numbers are the vendor's (which build) or ours:

- ``codegen/upstream/images.json`` names the base image's ``build``; ``file_builds`` lists base files
  still at an older build (the ZATCA models file is 1.0.0 in the 1.3 image); an overlay has its own
  ``build`` (``generate.py --adopt IMAGE --build 1.4``).
- ``RECONSTRUCTED`` files are ours: the UBL Common Aggregate Components file (``codegen/ubl.py``) and
  the Simple module (``codegen/simple.py``).

A service also records the files of other provenance that its requests and responses reach, so a
published service that carries reconstructed messages (documents carry UBL parties) is known as such.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import descriptor_pb2

RECONSTRUCTED = "reconstructed"
RECONSTRUCTED_PREFIXES = (
    "invora/simple/",
    "oasis/names/specification/ubl/schema/xsd/commonaggregatecomponents_2/",
)


def file_provenance(manifest: dict[str, object], names: Iterable[str]) -> dict[str, str]:
    """File name -> build label or ``"reconstructed"``, for every non-``google/`` file."""
    base = str(manifest.get("build") or "unknown")
    file_builds = dict(manifest.get("file_builds") or {})  # type: ignore[call-overload]
    overlays = list(manifest.get("overlays") or [])  # type: ignore[call-overload]
    out: dict[str, str] = {}
    for name in sorted(names):
        if name.startswith("google/"):
            continue
        if name.startswith(RECONSTRUCTED_PREFIXES):
            out[name] = RECONSTRUCTED
            continue
        owner = next((o for o in reversed(overlays) if name.startswith(tuple(o["replace"]))), None)
        out[name] = str(owner.get("build") or owner["image"]) if owner else str(file_builds.get(name, base))
    return out


def reached_files(
    fds: descriptor_pb2.FileDescriptorSet, service: descriptor_pb2.ServiceDescriptorProto
) -> set[str]:
    """Every file defining a message or enum that the service's requests and responses reach."""
    where: dict[str, tuple[str, descriptor_pb2.DescriptorProto | None]] = {}

    def add(file: str, scope: str, m: descriptor_pb2.DescriptorProto) -> None:
        full = f"{scope}.{m.name}"
        where[full] = (file, m)
        for n in m.nested_type:
            add(file, full, n)
        for e in m.enum_type:
            where[f"{full}.{e.name}"] = (file, None)

    for f in fds.file:
        for m in f.message_type:
            add(f.name, "." + f.package if f.package else "", m)
        for e in f.enum_type:
            where[(f".{f.package}" if f.package else "") + f".{e.name}"] = (f.name, None)
    seen: set[str] = set()
    todo = [t for m in service.method for t in (m.input_type, m.output_type)]
    while todo:
        name = todo.pop()
        if name in seen or name not in where:
            continue
        seen.add(name)
        _, msg = where[name]
        if msg is not None:
            todo.extend(fl.type_name for fl in msg.field if fl.type_name)
    return {where[n][0] for n in seen}


def service_provenance(
    fds: descriptor_pb2.FileDescriptorSet,
    file: descriptor_pb2.FileDescriptorProto,
    service: descriptor_pb2.ServiceDescriptorProto,
    files: dict[str, str],
) -> dict[str, object]:
    """``{"provenance": own file's, "depends": {other provenance: [files]}}`` for the catalog."""
    own = files[file.name]
    depends: dict[str, list[str]] = {}
    for name in sorted(reached_files(fds, service)):
        label = files.get(name)
        if label is not None and label != own:
            depends.setdefault(label, []).append(name)
    return {"provenance": own, "depends": dict(sorted(depends.items()))}
