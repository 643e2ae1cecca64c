"""The package as installed: metadata, what ``import invora`` loads, typed lazy names, the opt-in pytest
plugin, dependency floors and the generated tree's protobuf compatibility."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import invora

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(invora.__file__).resolve().parent  # the installed package (editable: src/invora)


def _python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return out.stdout


# -- metadata ---------------------------------------------------------------------------------------------
def test_one_version_and_an_spdx_license() -> None:
    meta = importlib.metadata.metadata("invora")
    assert meta["Version"] == invora.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert any(f.name == "LICENSE" for f in importlib.metadata.files("invora") or ())
    classifiers = meta.get_all("Classifier") or []
    assert {f"Programming Language :: Python :: 3.{v}" for v in (10, 11, 12, 13)} <= set(classifiers)
    assert "Typing :: Typed" in classifiers


def test_installing_registers_no_pytest_plugin() -> None:
    eps = importlib.metadata.distribution("invora").entry_points
    assert [ep for ep in eps if ep.group == "pytest11"] == []


# -- footprint ---------------------------------------------------------------------------------------------
HEAVY = ("asyncio", "grpc", "grpc.aio", "httpx", "google.protobuf", "invora._client", "invora.sandbox")


def test_import_invora_loads_no_grpc_asyncio_or_httpx() -> None:
    loaded = json.loads(
        _python(f"import sys, json, invora; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    )
    assert loaded == []


def test_first_use_loads_the_client_but_not_httpx_or_the_sandbox() -> None:
    code = (
        "import sys, json, invora\n"
        "invora.Client, invora.NotFound, invora.Retry\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    loaded = set(json.loads(_python(code)))
    assert {"grpc", "invora._client"} <= loaded  # grpc itself imports asyncio and grpc.aio
    assert not loaded & {"httpx", "invora.sandbox"}


# What only failures, retries, token fetches, REST or message handling need: not loaded by `invora.Client`,
# which every program pays before its first call (benchmarks/import_cost.py measures the time).
COLD = (
    "json",
    "random",
    "google.protobuf.descriptor",
    "pathlib",
    "uuid",
    "platform",
    "urllib.parse",
    "ipaddress",
    "dataclasses",
)


def test_client_access_loads_nothing_only_cold_paths_need() -> None:
    code = (
        "import sys, grpc\n"
        "before = set(sys.modules)\n"
        "import invora; invora.Client\n"
        "print(' '.join(set(sys.modules) - before))\n"  # (json would count as loaded if the probe used it)
    )
    beyond_grpc = set(_python(code).split())  # what grpc itself loads (asyncio, ssl, ...) is not ours
    assert "invora._client" in beyond_grpc
    assert not beyond_grpc & set(COLD)


def test_every_public_name_resolves_and_lists() -> None:
    for name in invora.__all__:
        assert getattr(invora, name) is not None, name
    assert set(invora.__all__) <= set(dir(invora))
    assert invora.webhooks.__name__ == "invora.webhooks"
    with pytest.raises(AttributeError, match="Clinet"):
        invora.Clinet  # type: ignore[attr-defined]  # noqa: B018


def test_type_checkers_see_exactly_the_lazy_names() -> None:
    """The TYPE_CHECKING imports in __init__ and the runtime table agree name for name and module for module."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    typed = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            assert alias.asname == alias.name, "re-export needs `import X as X`"
            typed[alias.name] = node.module if node.module != "invora" else f"invora.{alias.name}"
    runtime = {**invora._LAZY, **{m: f"invora.{m}" for m in invora._SUBMODULES}}  # type: ignore[attr-defined]
    assert typed == runtime


def _mypy(code: str, tmp_path: Path) -> str:
    (tmp_path / "user.py").write_text(code)
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\nstrict = True\n[mypy-grpc.*,grpc_status.*,google.rpc.*]\nignore_missing_imports = True\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--config-file", "mypy.ini", "user.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    return out.stdout + out.stderr


@pytest.mark.slow
def test_mypy_rejects_a_misspelt_name_and_accepts_the_real_ones(tmp_path: Path) -> None:
    out = _mypy(
        "import invora\n"
        "a: type[invora.Client] = invora.Client\n"
        "b = invora.NotFound\n"
        "c = invora.webhooks\n"
        "d = invora.Clinet\n",
        tmp_path,
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out
    assert 'user.py:5: error: Module has no attribute "Clinet"' in errors[0], out


# -- pytest plugin -----------------------------------------------------------------------------------------
SNIPPET = """
import sys

def test_sandbox_not_loaded():
    assert "invora.sandbox" not in sys.modules

def test_fixture(invora_sandbox):
    pass
"""


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(SNIPPET)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_users_pytest_session_does_not_load_the_sandbox(tmp_path: Path) -> None:
    r = _pytest(tmp_path)
    assert "1 passed" in r.stdout and "1 error" in r.stdout, r.stdout + r.stderr
    assert "fixture 'invora_sandbox' not found" in r.stdout


def test_the_plugin_is_one_flag_away(tmp_path: Path) -> None:
    r = _pytest(tmp_path, "-p", "invora.sandbox.pytest_plugin", "--fixtures")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "invora_sandbox [session scope]" in r.stdout


# -- dependencies ------------------------------------------------------------------------------------------
def _floors() -> dict[str, str]:
    found = {}
    for req in importlib.metadata.requires("invora") or ():
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(?:\[[^\]]*\])?\s*([^;]*)(;.*)?", req)
        assert m, req
        name, spec, marker = m.group(1).lower(), m.group(2), m.group(3) or ""
        floor = re.search(r">=\s*([0-9][^,\s]*)", spec)
        if floor and ("extra ==" not in marker or 'extra == "sandbox"' in marker):
            found[name] = floor.group(1)
    return found


def test_the_floor_job_pins_exactly_the_declared_floors() -> None:
    pins = dict(
        line.split("==")
        for line in (ROOT / ".ci" / "matrix-floors.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    floors = _floors()
    for name in (
        "grpcio",
        "protobuf",
        "googleapis-common-protos",
        "httpx",
        "grpcio-status",
        "typing-extensions",
    ):
        assert name in floors, f"{name} has no floor in pyproject.toml"
        assert tuple(map(int, pins[name].split(".")))[: len(floors[name].split("."))] == tuple(
            map(int, floors[name].split("."))
        ), f"{name}: floor {floors[name]} but .ci/matrix-floors.txt pins {pins[name]}"
    assert floors["protobuf"] == "5.29.1" and floors["grpcio"] == "1.66.2"


def test_generated_modules_carry_no_runtime_version_check_and_no_grpc_stubs() -> None:
    proto = PACKAGE / "_proto"
    modules = sorted(proto.rglob("*_pb2.py"))
    assert len(modules) > 100
    checked = [p.name for p in modules if "runtime_version" in p.read_text()]
    assert checked == []
    assert sorted(proto.rglob("*_pb2_grpc.py*")) == []


def test_descriptor_apis_that_differ_across_protobuf_go_through_pbcompat() -> None:
    """``FieldDescriptor.is_repeated`` is missing before protobuf 6.31 (and ``FieldDescriptor.label`` after 7.0)."""
    pattern = re.compile(r"\.is_repeated\b")
    offenders = [
        f"{p.relative_to(PACKAGE.parent)}:{n}"
        for p in PACKAGE.rglob("*.py")
        if "_proto" not in p.relative_to(PACKAGE).parts and p.name != "_pbcompat.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line.split("#")[0])
    ]
    assert offenders == [], "use invora._pbcompat.is_repeated(field): " + ", ".join(offenders)
