"""Every shell command and Python snippet of the README (and of the docs the README links to) runs here.

Fenced blocks carry a marker after the language:

- ```` ```sh tested ```` — run with bash (``-euo pipefail``) from the repository root, ``.venv/bin`` first on
  PATH and ``INVORA_*`` pointing at the session sandbox (a fresh tenant); must exit 0, or N with ``exit=N``.
- ```` ```sh tested=server ```` — a long-running server: must print its JSON line, then stop on SIGTERM.
- ```` ```python tested ```` — run in a subprocess after every earlier ``python tested`` block of the same
  file, like a notebook (a snippet may use names an earlier one defined).
- ```` ```python tested=pytest ```` — written to a file and run by pytest, next to a ``conftest.py`` that opts in
  to the ``invora_sandbox`` plugin as a user's would.
- ```` ```sh untested ```` — only with an ``<!-- untested: reason -->`` comment right above, and only the
  few listed in ``UNTESTED`` below.

The README uses the addresses of ``make sandbox`` (``127.0.0.1:50051`` / ``http://127.0.0.1:8080``) and the
placeholders ``<client_id>``, ``<client_secret>``, ``<org_id>``; they are replaced by the test sandbox's.
``make`` runs with ``-o .venv/.installed`` so a test never reinstalls the virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *(ROOT / "docs" / f"{n}.md" for n in (
    "authentication", "tenancy", "errors", "pagination", "retries", "async", "sandbox", "cli", "rest",
    "load-testing", "benchmarks", "webhooks", "locust",
))]  # fmt: skip
# Blocks that cannot run in the suite, with the reason (keep this list tiny).
UNTESTED = {
    "make test": "runs this very suite: a test of it would recurse",
    'pip install "invora[sandbox]"': "installs from the package index (network)",
    "make generate": "rewrites the committed generated tree; `make check-generated` runs the same pipeline and is tested",
}
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.M | re.S)


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    marker: str  # "tested", "tested=server", "tested=pytest", "untested", ""
    expect: int
    code: str
    comment: str  # the HTML comment right above, if any

    @property
    def id(self) -> str:
        first = self.code.strip().splitlines()[0] if self.code.strip() else ""
        return f"{self.path.name}:{self.line}:{first[:40]}"


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        words = m.group(1).split()
        lang = words[0] if words else ""
        marker = next((w for w in words[1:] if w.startswith(("tested", "untested"))), "")
        exit_word = next((w for w in words[1:] if w.startswith("exit=")), "exit=0")
        before = text[: m.start()].rstrip().rsplit("\n", 1)[-1]
        comment = before if before.startswith("<!--") else ""
        line = text.count("\n", 0, m.start()) + 1
        out.append(Block(path, line, lang, marker, int(exit_word[5:]), m.group(2), comment))
    return out


ALL = [b for p in DOCS if p.exists() for b in blocks(p)]
COMMANDS = [b for b in ALL if b.lang in ("sh", "bash", "shell", "console", "python", "py")]


def test_docs_exist_and_every_command_block_is_marked() -> None:
    missing = [p.name for p in DOCS if not p.exists()]
    assert not missing, missing
    unmarked = [b.id for b in COMMANDS if not b.marker]
    assert not unmarked, f"mark these blocks `tested` or `untested`: {unmarked}"


def test_untested_blocks_are_the_listed_few_with_reasons() -> None:
    untested = [b for b in COMMANDS if b.marker == "untested"]
    found = {b.code.split("#")[0].strip(): b for b in untested}
    assert set(found) == set(UNTESTED), sorted(found)
    for b in untested:
        assert b.comment.startswith("<!-- untested:"), f"{b.id}: needs an <!-- untested: reason --> comment"


def test_readme_leads_with_the_two_commands() -> None:
    readme = [b for b in ALL if b.path.name == "README.md" and b.lang == "sh"]
    assert [b.code.strip() for b in readme[:2]] == ["make demo", "make test"]


def test_relative_links_resolve() -> None:
    dangling = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" in target:
                continue
            resolved = (path.parent / target).resolve()
            if not resolved.exists():
                dangling.append(f"{path.name}: {target}")
    assert not dangling, dangling


def test_readme_quotes_the_published_benchmark_table() -> None:
    def table(path: Path) -> list[str]:
        lines = path.read_text().splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("| group | scenario |"))
        end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
        return lines[start:end]

    published = table(ROOT / "docs" / "benchmarks.md")
    assert len(published) > 10 and published == table(ROOT / "README.md")


# -- running the blocks ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tenant(invora_sandbox: Any) -> Any:
    return invora_sandbox.create_tenant("README Co")


@pytest.fixture(scope="module")
def env(invora_sandbox: Any, tenant: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVORA_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        INVORA_TARGET=invora_sandbox.grpc_target,
        INVORA_TOKEN_URL=invora_sandbox.token_url,
        INVORA_CLIENT_ID=tenant.client_id,
        INVORA_CLIENT_SECRET=tenant.client_secret,
        INVORA_ORG_ID=tenant.org_id,
    )
    return env


def substitute(code: str, sb: Any, tenant: Any) -> str:
    return (
        code.replace("http://127.0.0.1:8080", sb.rest_url)
        .replace("127.0.0.1:50051", sb.grpc_target)
        .replace("<client_id>", tenant.client_id)
        .replace("<client_secret>", tenant.client_secret)
        .replace("<org_id>", tenant.org_id)
        .replace("make ", "make -o .venv/.installed ")
    )


def _report(r: subprocess.CompletedProcess[str]) -> str:
    return f"exit {r.returncode}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"


SHELL = [b for b in COMMANDS if b.lang in ("sh", "bash", "shell", "console") and b.marker == "tested"]


def _marked(b: Block) -> Any:
    """`make check-generated` needs the generator `make install` pins (the `generator` marker)."""
    return pytest.param(b, marks=pytest.mark.generator) if "generate" in b.code else b


@pytest.mark.parametrize("block", [_marked(b) for b in SHELL], ids=[b.id for b in SHELL])
def test_shell_block(block: Block, env: dict[str, str], invora_sandbox: Any, tenant: Any) -> None:
    script = substitute(block.code, invora_sandbox, tenant)
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=180)  # fmt: skip
    assert r.returncode == block.expect, _report(r)
    assert "Traceback" not in r.stderr, _report(r)


SERVERS = [b for b in COMMANDS if b.marker == "tested=server"]


@pytest.mark.parametrize("block", SERVERS, ids=[b.id for b in SERVERS])
def test_server_block(block: Block, env: dict[str, str]) -> None:
    command = (
        block.code.strip()
        .replace("--grpc-port 50051", "--grpc-port 0")
        .replace("--http-port 8080", "--http-port 0")
        .replace("--port 8080", "--port 0")
    )
    proc = subprocess.Popen(["bash", "-c", "exec env " + command], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the server printed nothing within 60 s"
        info = json.loads(proc.stdout.readline())
        if "sandbox" in command:
            assert {"grpc_target", "rest_url", "token_url", "client_id", "client_secret", "org_id"} <= set(
                info
            )
        else:  # the webhook receiver
            assert info["url"].startswith("http://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0


PYTHON = [b for b in COMMANDS if b.lang in ("python", "py") and b.marker == "tested"]


@pytest.mark.parametrize("block", PYTHON, ids=[b.id for b in PYTHON])
def test_python_block(block: Block, env: dict[str, str], invora_sandbox: Any, tenant: Any) -> None:
    earlier = [b for b in PYTHON if b.path == block.path and b.line <= block.line]
    script = "\n\n".join(substitute(b.code, invora_sandbox, tenant) for b in earlier)
    r = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, _report(r)


PYTESTS = [b for b in COMMANDS if b.marker == "tested=pytest"]


@pytest.mark.parametrize("block", PYTESTS, ids=[b.id for b in PYTESTS])
def test_pytest_block(block: Block, env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "test_snippet.py").write_text(block.code)
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["invora.sandbox.pytest_plugin"]\n')
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_snippet.py"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, _report(r)
    assert "1 passed" in r.stdout
