"""The package's layers, read from the source (every import statement, including those inside functions).

- The client core (everything outside ``cli``, ``loadtest`` and ``sandbox``) imports none of them, not even
  lazily or by name through ``importlib``.
- The sandbox uses only the schema-facing pieces of the SDK (catalog, transcoding, decimal helpers, error
  table, JOSE primitives, generated messages), never the client.
- ``loadtest`` may use the CLI's shared connection helpers; the CLI reaches ``loadtest`` only by name, to
  register ``invora bench``.
- No import cycle among the imports that run: at module level, inside functions (a lazy import that closes a
  loop is still a loop: which module finishes first then depends on who is imported first), or by name.
  ``if TYPE_CHECKING:`` imports are left out of that one rule, on purpose: they never run, and they are how
  a lower module names a higher one's class in an annotation (a sandbox handler takes the ``Sandbox``).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "invora"
APPS = ("invora.cli", "invora.loadtest", "invora.sandbox")
SANDBOX_MAY_USE = {
    "invora._catalog",
    "invora._jose",
    "invora._pbcompat",
    "invora._proto",
    "invora.decimal",
    "invora.errors",
    "invora.transcoding",
}

KNOWN_CYCLES: list[frozenset[str]] = []  # nothing may be added here


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in SRC.rglob("*.py") if "_proto" not in p.relative_to(SRC).parts}


def _owner(target: str) -> str | None:
    """The module of ours an import lands in (generated code collapses to ``invora._proto``)."""
    if target == "invora._proto" or target.startswith("invora._proto."):
        return "invora._proto"
    while target not in MODULES and "." in target:
        target = target.rsplit(".", 1)[0]
    return target if target in MODULES else None


def _type_checking(test: ast.expr) -> bool:
    return ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def scan(tree: ast.Module, package: str, *, typing: bool = False) -> set[str]:
    """Dotted names a module's code imports: ``import``/``from`` statements anywhere (relative ones
    resolved against ``package``; ``from pkg import mod`` names the submodule), ``import_module("name")``,
    and, in a module that also imports by a computed name (``import_module(table[key])``), every module
    name it spells out in a string. ``if TYPE_CHECKING:`` bodies (and the ``else`` of
    ``if not TYPE_CHECKING:``) count only with ``typing``."""
    found: set[str] = set()
    by_name = False

    def visit(node: ast.AST) -> None:
        nonlocal by_name
        if isinstance(node, ast.If) and not typing:
            negated = isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not)
            if _type_checking(node.test.operand if isinstance(node.test, ast.UnaryOp) else node.test):
                for sub in node.body if negated else node.orelse:
                    visit(sub)
                return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package
                for _ in range(node.level - 1):
                    pkg = pkg.rsplit(".", 1)[0]
                base = f"{pkg}.{base}" if base else pkg
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names)
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
            else:
                by_name = True
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    if by_name:
        found.update(
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and n.value in MODULES
            and "." in n.value
        )
    return found


def imports(module: str, *, typing: bool = False) -> set[str]:
    """Modules of ours that ``module`` imports anywhere in its body (see :func:`scan`)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    return _ours(scan(ast.parse(path.read_text()), package, typing=typing), module)


def _ours(names: set[str], module: str) -> set[str]:
    owners = {_owner(n) for n in names if n == "invora" or n.startswith("invora.")}
    return {o for o in owners if o is not None and o != module}


def _is_app(module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in APPS)


def test_the_module_scan_sees_the_package() -> None:
    assert {"invora._client", "invora._core", "invora.cli._main", "invora.sandbox.app"} <= set(MODULES)
    assert "invora.loadtest.cli" in imports("invora.cli._main")  # by name, through importlib
    assert "invora._core" in imports("invora._client")
    assert "invora.transport.rest" in imports("invora.transport._registry")  # by name, through a table
    assert "invora._client" in imports("invora")  # the lazy attributes of ``import invora``


def _scan(source: str, *, typing: bool = False) -> set[str]:
    return _ours(scan(ast.parse(source), "invora.sandbox", typing=typing), "invora.sandbox.x")


def test_the_scan_counts_every_import_that_runs_and_no_type_checking_one() -> None:
    source = """
from typing import TYPE_CHECKING
from . import faults
if TYPE_CHECKING:
    from invora.sandbox.app import Sandbox
else:
    from .store import Record
if not TYPE_CHECKING:
    import invora.sandbox.http
else:
    from invora import _client

def lazily():
    from invora.sandbox.domain import simple
    return importlib.import_module("invora.sandbox.grpc_server")
"""
    runs = {"invora.sandbox.faults", "invora.sandbox.store", "invora.sandbox.http"}
    runs |= {"invora.sandbox.domain.simple", "invora.sandbox.grpc_server"}
    assert _scan(source) == runs
    assert _scan(source, typing=True) == runs | {"invora.sandbox.app", "invora._client"}


def test_the_scan_sees_a_table_of_module_names() -> None:
    source = """
_WHERE = {"pull": "invora.schema.reflection"}
def __getattr__(name):
    return getattr(importlib.import_module(_WHERE[name]), name)
"""
    assert _scan(source) == {"invora.schema.reflection"}
    assert _scan('log = logging.getLogger("invora.sandbox.app")') == set()  # a name, not an import


def test_the_core_imports_no_app_layer() -> None:
    bad = {
        (m, dep)
        for m in MODULES
        if not _is_app(m) and m != "invora.__main__"
        for dep in imports(m, typing=True)
        if _is_app(dep)
    }
    assert not bad, sorted(bad)


def test_the_sandbox_uses_only_schema_facing_sdk_pieces() -> None:
    used = {
        (m, dep)
        for m in MODULES
        if m.startswith("invora.sandbox")
        for dep in imports(m, typing=True)
        if not dep.startswith("invora.sandbox")
    }
    assert {dep for _, dep in used} <= SANDBOX_MAY_USE, sorted(p for p in used if p[1] not in SANDBOX_MAY_USE)
    assert {dep for _, dep in used} == SANDBOX_MAY_USE, "unused, drop from SANDBOX_MAY_USE"


def test_loadtest_uses_only_the_clis_shared_helpers() -> None:
    allowed = {"invora.cli.common", "invora.cli._resolve"}
    bad = {
        (m, dep)
        for m in MODULES
        if m.startswith("invora.loadtest")
        for dep in imports(m, typing=True)
        if dep.startswith("invora.cli") and dep not in allowed
    }
    assert not bad, sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_cycle_finder_finds_a_cycle_closed_by_a_lazy_import() -> None:
    graph = {m: imports(m) for m in MODULES}
    lower, upper = "invora.sandbox.store", "invora.sandbox.app"
    assert lower in graph[upper] and not [c for c in cycles(graph) if lower in c]
    graph[lower] = graph[lower] | _scan(f"def handler():\n    from {upper} import Sandbox\n")
    assert [c for c in cycles(graph) if {lower, upper} <= c]


def test_no_import_cycles() -> None:
    found = cycles({m: imports(m) for m in MODULES})
    assert [sorted(c) for c in found if c not in KNOWN_CYCLES] == []
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"fixed, remove from KNOWN_CYCLES: {gone}"
