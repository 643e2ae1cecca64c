"""The ``invora`` command: call any RPC, list with pagination, describe the schema, fetch tokens, run the
sandbox and load tests. Subcommand modules are imported only when used so ``invora --help`` stays fast."""

from __future__ import annotations

from invora.cli._main import main

__all__ = ["main"]
