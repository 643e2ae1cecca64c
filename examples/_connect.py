"""Where the examples connect: your environment, or an embedded sandbox when nothing is configured.

Set ``INVORA_TARGET`` plus ``INVORA_CLIENT_ID``/``INVORA_CLIENT_SECRET`` (and ``INVORA_TOKEN_URL`` for a
non-default token endpoint) or ``INVORA_TOKEN``; ``INVORA_ORG_ID`` optionally picks the organization. The
same variables drive the ``invora`` CLI. Without ``INVORA_TARGET`` a local sandbox starts in-process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import invora

if TYPE_CHECKING:
    from invora.sandbox import Sandbox


@dataclass
class Connection:
    target: str
    credentials: invora.Credentials
    org_id: str | None
    sandbox: Sandbox | None  # set when running against an embedded sandbox (tests and demos only)

    def client(self, **options: object) -> invora.Client:
        return invora.Client(self.target, credentials=self.credentials, org_id=self.org_id, **options)  # type: ignore[arg-type]

    def async_client(self, **options: object) -> invora.AsyncClient:
        return invora.AsyncClient(self.target, credentials=self.credentials, org_id=self.org_id, **options)  # type: ignore[arg-type]


@contextmanager
def connect(*, platform: bool = False) -> Iterator[Connection]:
    """A :class:`Connection`; ``platform=True`` makes the embedded sandbox's tenant a platform."""
    env = os.environ
    if env.get("INVORA_TARGET"):
        credentials: invora.Credentials
        if env.get("INVORA_TOKEN"):
            credentials = invora.StaticToken(env["INVORA_TOKEN"])
        else:
            credentials = invora.ClientCredentials(
                env["INVORA_CLIENT_ID"], env["INVORA_CLIENT_SECRET"], env.get("INVORA_TOKEN_URL") or None
            )
        yield Connection(env["INVORA_TARGET"], credentials, env.get("INVORA_ORG_ID") or None, None)
        return
    from invora.sandbox import Sandbox

    with Sandbox(grpc_port=0, http_port=0) as sb:
        tenant = sb.create_tenant("Example Platform", kind="platform") if platform else sb.tenant
        credentials = invora.ClientCredentials(tenant.client_id, tenant.client_secret, sb.token_url)
        print(f"(no INVORA_TARGET set: using an embedded sandbox at {sb.grpc_target})")
        yield Connection(sb.grpc_target, credentials, None, sb)
