"""A local Invora gateway for tests, demos and load tests: real gRPC, REST/JSON and an OIDC token endpoint.

    from invora.sandbox import Sandbox

    with Sandbox() as sb:
        client = invora.Client(sb.grpc_target, credentials=invora.ClientCredentials(
            sb.client_id, sb.client_secret, sb.token_url), org_id=sb.org_id)

Or from a shell: ``python -m invora.sandbox --grpc-port 0 --http-port 0`` (prints one JSON line with the
addresses and credentials). Requires the ``sandbox`` extra (``cryptography``) to sign tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from invora.sandbox.app import CallRecord, Sandbox, Tenant

__all__ = ["CallRecord", "Sandbox", "Tenant"]


def __getattr__(name: str) -> Any:
    # Lazy: the pytest plugin imports this package at collection time and must stay cheap.
    if name in __all__:
        from invora.sandbox import app

        return getattr(app, name)
    raise AttributeError(f"module 'invora.sandbox' has no attribute {name!r}")
