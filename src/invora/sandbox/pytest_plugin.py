"""pytest plugin: a session-scoped ``invora_sandbox`` fixture. Opt-in, so installing the SDK adds nothing to
other projects' pytest sessions: ``pytest_plugins = ["invora.sandbox.pytest_plugin"]`` in a top-level
``conftest.py``, or ``-p invora.sandbox.pytest_plugin``.

    def test_create(invora_sandbox):
        client = invora.Client(invora_sandbox.grpc_target, credentials=invora.ClientCredentials(
            invora_sandbox.client_id, invora_sandbox.client_secret, invora_sandbox.token_url),
            org_id=invora_sandbox.org_id)

Importing this module costs nothing: the sandbox (and ``cryptography``) load only when a test uses the
fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from invora.sandbox.app import Sandbox


@pytest.fixture(scope="session")
def invora_sandbox() -> Iterator[Sandbox]:
    """A running sandbox on free loopback ports, shared by the session (tenants isolate tests)."""
    from invora.sandbox.app import Sandbox

    sb = Sandbox(grpc_port=0, http_port=0, host="127.0.0.1")
    try:
        sb.start()
    except ImportError as exc:
        pytest.fail(f"invora_sandbox needs the 'sandbox' extra: pip install 'invora[sandbox]' ({exc})")
    try:
        yield sb
    finally:
        sb.stop()
