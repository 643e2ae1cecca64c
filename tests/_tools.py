"""Third-party tools the suite drives (installed by ``make install``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def buf() -> str:
    """``buf`` (npm ``@bufbuild/buf``, put in ``.tools/`` by ``make install``); a test needing it fails without it."""
    local = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
    found = str(local) if local.exists() else shutil.which("buf")
    if found is None:
        pytest.fail("buf is not installed: run `make install` (npm install --prefix .tools @bufbuild/buf)")
    return found
