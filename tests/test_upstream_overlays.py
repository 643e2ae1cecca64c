"""Adopting a newer vendor build of one package is one command and leaves nothing stale behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

import generate
import render

UPSTREAM = Path(__file__).resolve().parents[1] / "codegen" / "upstream"


@pytest.fixture
def upstream_dir(tmp_path: Path) -> Path:
    shutil.copyfile(UPSTREAM / "images.json", tmp_path / "images.json")
    (tmp_path / "invora.binpb").symlink_to(UPSTREAM / "invora.binpb")
    (tmp_path / "ubl-xsd").symlink_to(UPSTREAM / "ubl-xsd")
    return tmp_path


def _newer_build(tmp_path: Path) -> Path:
    """A fake newer build of invora/allowances/: one file changed, one file gone, one file new."""
    base = render.load_set(UPSTREAM / "invora.binpb")
    owned = [f for f in base.file if f.name.startswith("invora/allowances/")]
    assert len(owned) >= 1
    newer = descriptor_pb2.FileDescriptorSet()
    changed = newer.file.add()
    changed.CopyFrom(next(f for f in owned if f.name.endswith("service.proto")))
    changed.message_type.add(name="AddedInNewerBuild")
    fresh = newer.file.add(
        name="invora/allowances/v3/extra.proto", package="invora.allowances.v3", syntax="proto3"
    )
    fresh.message_type.add(name="Extra")
    # An unrelated file in the image must not leak in: adoption is by prefix.
    newer.file.add(name="invora/other/v9/x.proto", package="invora.other.v9", syntax="proto3")
    path = tmp_path / "newer.binpb"
    path.write_bytes(newer.SerializeToString())
    return path


def test_adopt_records_overlay_and_replaces_prefix(upstream_dir: Path, tmp_path: Path) -> None:
    base_names = {f.name for f in generate.load_upstream(upstream_dir)}
    image = _newer_build(tmp_path)
    name = generate.adopt(image, ["invora/allowances/"], upstream_dir)
    manifest = json.loads((upstream_dir / "images.json").read_text())
    assert manifest["overlays"] == [{"image": name, "replace": ["invora/allowances/"]}]
    assert (upstream_dir / name).read_bytes() == image.read_bytes()

    files = {f.name: f for f in generate.load_upstream(upstream_dir)}
    service = files["invora/allowances/v2/service.proto"]
    assert "AddedInNewerBuild" in {m.name for m in service.message_type}
    assert "invora/allowances/v3/extra.proto" in files
    assert "invora/other/v9/x.proto" not in files
    dropped = {n for n in base_names if n.startswith("invora/allowances/")} - set(files)
    kept_elsewhere = {n for n in base_names if not n.startswith("invora/allowances/")}
    assert kept_elsewhere <= set(files)
    assert dropped == {n for n in base_names if n.startswith("invora/allowances/")} - {
        "invora/allowances/v2/service.proto"
    }

    # Re-adopting the same prefixes replaces the earlier overlay instead of stacking another.
    generate.adopt(image, ["invora/allowances/"], upstream_dir)
    assert len(json.loads((upstream_dir / "images.json").read_text())["overlays"]) == 1


def test_adopt_refuses_an_image_without_the_prefix(upstream_dir: Path, tmp_path: Path) -> None:
    image = _newer_build(tmp_path)
    with pytest.raises(SystemExit, match="nothing to adopt"):
        generate.adopt(image, ["invora/billing/"], upstream_dir)
    assert json.loads((upstream_dir / "images.json").read_text())["overlays"] == []
