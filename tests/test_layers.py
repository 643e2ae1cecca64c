"""The package's layers, read from the source (every import statement, including those inside functions).

- The client core (everything outside ``cli``, ``loadtest`` and ``sandbox``) imports none of them, not even
  lazily or by name through ``importlib``.
- The sandbox uses only the schema-facing pieces of the SDK (catalog, transcoding, decimal helpers, error
  table, JOSE primitives, generated messages), never the client.
- ``loadtest`` may use the CLI's shared connection helpers; the CLI reaches ``loadtest`` only by name, to
  register ``invora bench``.
- No import cycle at run time (``TYPE_CHECKING`` imports excluded), beyond the ones listed in KNOWN_CYCLES.
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
# Cycles that exist today in packages being reworked elsewhere; each must disappear, none may be added.
KNOWN_CYCLES: list[frozenset[str]] = [
    frozenset(
        {"invora.sandbox.app", "invora.sandbox.domain", "invora.sandbox.domain.simple", "invora.sandbox.http"}
    ),
    frozenset({"invora.sandbox.domain.billing.accounts", "invora.sandbox.domain.billing.usage"}),
    frozenset({"invora._client", "invora.schema.guard", "invora.schema.reflection", "invora.schema.runtime"}),
]


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


def imports(module: str, *, typing: bool = False) -> set[str]:
    """Modules of ours that ``module`` imports anywhere in its body (and, by name, via import_module)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test) and not typing:
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = package
                    for _ in range(child.level - 1):
                        pkg = pkg.rsplit(".", 1)[0]
                    base = f"{pkg}.{base}" if base else pkg
                found.update(
                    f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in child.names
                )
            elif (
                isinstance(child, ast.Call)
                and ast.unparse(child.func).endswith("import_module")
                and child.args
                and isinstance(child.args[0], ast.Constant)
                and isinstance(child.args[0].value, str)
            ):
                found.add(child.args[0].value)
            visit(child)

    visit(ast.parse(path.read_text()))
    owners = {_owner(t) for t in found if t == "invora" or t.startswith("invora.")}
    return {o for o in owners if o is not None and o != module}


def _is_app(module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in APPS)


def test_the_module_scan_sees_the_package() -> None:
    assert {"invora._client", "invora._core", "invora.cli._main", "invora.sandbox.app"} <= set(MODULES)
    assert "invora.loadtest.cli" in imports("invora.cli._main")  # by name, through importlib
    assert "invora._core" in imports("invora._client")


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


def test_no_new_import_cycles() -> None:
    graph = {m: imports(m) for m in MODULES}
    found = cycles(graph)
    assert [c for c in found if c not in KNOWN_CYCLES] == []
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"fixed, remove from KNOWN_CYCLES: {gone}"
