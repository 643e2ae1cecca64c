"""Import helper: the code generators live in codegen/, outside the package."""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
CODEGEN = ROOT / "codegen"
if str(CODEGEN) not in sys.path:
    sys.path.insert(0, str(CODEGEN))
