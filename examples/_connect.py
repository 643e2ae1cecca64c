"""Where the examples connect: your environment, or an embedded sandbox when nothing is configured.

Set ``INVORA_TARGET`` (or ``INVORA_ENV``) plus ``INVORA_CLIENT_ID``/``INVORA_CLIENT_SECRET`` (and
``INVORA_TOKEN_URL`` for a non-default token endpoint) or ``INVORA_TOKEN``; ``INVORA_ORG_ID`` optionally
picks the organization. ``Client.from_env()`` reads them, as the ``invora`` CLI does. Without either a local
sandbox starts in-process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import invora

if TYPE_CHECKING:
    from invora.sandbox import Sandbox


@dataclass
class Connection:
    #: Constructor arguments for the embedded sandbox; None: the ``INVORA_*`` variables (``from_env``).
    settings: dict[str, Any] | None
    sandbox: Sandbox | None  # set when running against an embedded sandbox (tests and demos only)

    def client(self, **options: Any) -> invora.Client:
        if self.settings is None:
            return invora.Client.from_env(**options)
        return invora.Client(**self.settings, **options)

    def async_client(self, **options: Any) -> invora.AsyncClient:
        if self.settings is None:
            return invora.AsyncClient.from_env(**options)
        return invora.AsyncClient(**self.settings, **options)


@contextmanager
def connect(*, platform: bool = False) -> Iterator[Connection]:
    """A :class:`Connection`; ``platform=True`` makes the embedded sandbox's tenant a platform."""
    if os.environ.get("INVORA_TARGET") or os.environ.get("INVORA_ENV"):
        yield Connection(None, None)
        return
    from invora.sandbox import Sandbox

    with Sandbox(grpc_port=0, http_port=0) as sb:
        tenant = sb.create_tenant("Example Platform", kind="platform") if platform else sb.tenant
        credentials = invora.ClientCredentials(tenant.client_id, tenant.client_secret, sb.token_url)
        print(f"(no INVORA_TARGET set: using an embedded sandbox at {sb.grpc_target})")
        yield Connection({"target": sb.grpc_target, "credentials": credentials}, sb)
