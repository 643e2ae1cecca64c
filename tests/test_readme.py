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
- a further word ``newcomer`` marks the README's first-ten-minutes path: ``test_newcomer_path`` runs those
  blocks in order, as printed, in a copy of the repository (``make demo``, the sandbox with its env file, then
  the second terminal's commands and the first Python snippet, twice); the per-block tests skip its shell
  blocks, which need that sandbox's ``sandbox.env``.

The README uses the addresses of ``make sandbox`` (``127.0.0.1:50051`` / ``http://127.0.0.1:8080``) and the
placeholders ``<client_id>``, ``<client_secret>``, ``<org_id>``; they are replaced by the test sandbox's.
``make`` runs with ``-o .venv/.installed`` so a test never reinstalls the virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _hardening import free_port

ROOT = Path(__file__).resolve().parent.parent
#: The README is the package index page, where relative links do not resolve: they point here instead.
REPO_URL = "https://github.com/invora/invora-python"
DOCS = [ROOT / "README.md", *(ROOT / "docs" / f"{n}.md" for n in (
    "authentication", "tenancy", "errors", "pagination", "retries", "async", "sandbox", "cli", "rest",
    "load-testing", "benchmarks", "webhooks", "locust", "schema-check",
))]  # fmt: skip
# Blocks that cannot run in the suite, with the reason (keep this list tiny).
UNTESTED = {
    "make test": "runs this very suite: a test of it would recurse",
    'pip install -e ".[sandbox]"': "installs into the active virtualenv, with build dependencies from the index",
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
    newcomer: bool = False  # part of the README's newcomer path (see test_newcomer_path)

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
        out.append(
            Block(path, line, lang, marker, int(exit_word[5:]), m.group(2), comment, "newcomer" in words[1:])
        )
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


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_resolve_and_the_readme_has_only_absolute_ones() -> None:
    dangling = []
    for path in DOCS:
        text = path.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            target, _, anchor = target.partition("#")
            if path.name == "README.md":
                if not target.startswith(("https://", "http://")):
                    dangling.append(
                        f"README.md: relative link {target or '#' + anchor} (the package index cannot follow it)"
                    )
                    continue
                if not target.startswith(REPO_URL):
                    continue
                rest = target.removeprefix(REPO_URL).lstrip("/")
                if rest:
                    kind, _, rest = rest.partition("/main/")
                    resolved = ROOT / rest
                    if (
                        kind not in ("blob", "tree")
                        or not resolved.exists()
                        or resolved.is_dir() != (kind == "tree")
                    ):
                        dangling.append(f"README.md: {target}")
                elif anchor and anchor not in {_slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}:
                    dangling.append(f"README.md: no heading for #{anchor}")
            elif target and "://" not in target and not (path.parent / target).resolve().exists():
                dangling.append(f"{path.name}: {target}")
    assert not dangling, dangling


def test_pyproject_names_the_repository_the_readme_links_to() -> None:
    found = re.search(r'^Repository = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert found and found.group(1) == REPO_URL


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


SHELL = [
    b
    for b in COMMANDS
    if b.lang in ("sh", "bash", "shell", "console") and b.marker == "tested" and not b.newcomer
]


def _marked(b: Block) -> Any:
    """`make check-generated` needs the generator `make install` pins (the `generator` marker)."""
    return pytest.param(b, marks=pytest.mark.generator) if "generate" in b.code else b


@pytest.mark.parametrize("block", [_marked(b) for b in SHELL], ids=[b.id for b in SHELL])
def test_shell_block(block: Block, env: dict[str, str], invora_sandbox: Any, tenant: Any) -> None:
    script = substitute(block.code, invora_sandbox, tenant)
    # A Locust master listens on 5557 unless told otherwise; suites running side by side (the CI matrix)
    # would share it, and a worker would join another run's master. A free port, through Locust's env vars.
    port = str(free_port())
    env = {**env, "LOCUST_MASTER_BIND_PORT": port, "LOCUST_MASTER_NODE_PORT": port}
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=180)  # fmt: skip
    assert r.returncode == block.expect, _report(r)
    assert "Traceback" not in r.stderr, _report(r)


SERVERS = [b for b in COMMANDS if b.marker == "tested=server" and not b.newcomer]


@pytest.mark.parametrize("block", SERVERS, ids=[b.id for b in SERVERS])
def test_server_block(block: Block, env: dict[str, str], tmp_path: Path) -> None:
    env_file = tmp_path / "sandbox.env"
    command = (
        block.code.strip()
        .replace("--grpc-port 50051", "--grpc-port 0")
        .replace("--http-port 8080", "--http-port 0")
        .replace("--port 8080", "--port 0")
        .replace("--env-file sandbox.env", f"--env-file {env_file}")
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
            if "--env-file" in command:
                assert f"INVORA_ORG_ID={info['org_id']}" in env_file.read_text()
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


# -- the newcomer's path --------------------------------------------------------------------------------
NEWCOMER = [b for b in ALL if b.path.name == "README.md" and b.newcomer]


def _copy_of_the_repository(dest: Path) -> None:
    """What ``git clone`` checks out (in an unpacked sdist: what it carries): the tracked files (as in the
    working tree, so edits not yet committed are what is tested). ``.venv`` is this checkout's, linked: ``make
    install`` takes minutes and the network, and it installed the very same files."""
    if not (ROOT / ".git").exists():  # an unpacked sdist (.ci/matrix): every file it carries is the checkout
        shutil.copytree(ROOT, dest, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.egg-info", ".pytest_cache"))  # fmt: skip
    else:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        )
        for name in filter(None, listed.stdout.decode().split("\0")):
            source = ROOT / name
            if source.is_file():  # a tracked file deleted in the working tree is not copied
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / name)
    (dest / ".venv").symlink_to(ROOT / ".venv")


def _newcomer_env() -> dict[str, str]:
    """A fresh terminal: no INVORA_* variables, no virtualenv active, its bin/ not on PATH."""
    venv_bins = {str(ROOT / ".venv" / "bin"), str(Path(sys.executable).parent)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVORA_") and k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p not in venv_bins)
    return env


def _sh(code: str, cwd: Path, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=timeout)  # fmt: skip
    assert r.returncode == 0 and "Traceback" not in r.stderr, f"{code}\n{_report(r)}"
    return r


@pytest.mark.slow
def test_newcomer_path(tmp_path: Path) -> None:
    """Fresh copy → ``make demo`` → the README's next commands exactly as printed (the sandbox only gets free
    ports instead of 50051/8080, which may be taken here) → a CLI call and a Python snippet, twice in a row."""
    servers = [i for i, b in enumerate(NEWCOMER) if b.marker == "tested=server"]
    assert len(servers) == 1, "the newcomer path has one sandbox to start"
    before, server, after = NEWCOMER[: servers[0]], NEWCOMER[servers[0]], NEWCOMER[servers[0] + 1 :]
    assert [b.code.strip() for b in before] == ["make demo"]
    assert {b.lang for b in after} == {"sh", "python"}, "then shell commands and a Python snippet"
    clone = tmp_path / "invora-python"
    clone.mkdir()
    _copy_of_the_repository(clone)
    env = _newcomer_env()

    demo = _sh(before[0].code.replace("make ", "make -o .venv/.installed "), clone, env)
    _, sep, suggested = demo.stdout.partition("Next")
    assert sep, f"the demo ends without telling what to do next:\n{demo.stdout[-2000:]}"
    bare = [line for line in suggested.splitlines() if line.strip().startswith("invora ")]
    assert not bare or "source .venv/bin/activate" in suggested, (
        f"the demo's next steps call `invora`, which is on PATH only in the activated .venv: {bare}"
    )

    lines = server.code.strip().splitlines()
    assert lines[-1].startswith("invora sandbox ") and "--env-file sandbox.env" in lines[-1]
    lines[-1] = "exec " + lines[-1].replace(
        "invora sandbox ", "invora sandbox --grpc-port 0 --http-port 0 ", 1
    )
    proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", "\n".join(lines)], cwd=clone, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the sandbox printed nothing within 60 s"
        info = json.loads(proc.stdout.readline())
        env_file = clone / "sandbox.env"
        assert env_file.stat().st_mode & 0o777 == 0o600
        assert f"INVORA_ORG_ID={info['org_id']}" in env_file.read_text()

        created = []
        for _round in range(2):  # everything runs again, as a newcomer would
            for block in after:
                if block.lang == "python":
                    (clone / "quickstart.py").write_text(block.code)
                    r = _sh("source .venv/bin/activate\nsource sandbox.env\npython quickstart.py", clone, env)
                    assert "862.5" in r.stdout, r.stdout  # the platform computed the totals
                else:
                    r = _sh(block.code, clone, env)
                    if "simple.invoices.create" in block.code:
                        created.append(json.loads(r.stdout.splitlines()[0])["details"]["key"])
        assert len(created) == 2 and created[0] != created[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not (clone / "sandbox.env").exists()
