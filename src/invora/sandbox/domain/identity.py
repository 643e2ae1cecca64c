"""Identity: registration of new organizations and platforms' connected businesses (filled in below)."""

from __future__ import annotations

from typing import Any


def factories() -> dict[str, Any]:
    return {}
