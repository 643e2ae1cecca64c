"""Plain-grpcio calls into a sandbox (no SDK involved): for the sandbox's own tests and users' smoke tests.

raw = RawCaller(sb.grpc_target, token=sb.mint_token(sb.tenant))
resp = raw.call("simple.invoices.get", key="...")
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import grpc

from invora import _catalog

_UNSET: Any = object()


class RawCaller:
    """Calls RPCs by ``pkg.Service/Method`` or accessor path over one channel, with bearer and tenancy
    metadata. Errors surface as ``grpc.RpcError``."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        org_id: str | None = None,
        root_certificates: bytes | None = None,
        server_name: str | None = None,
    ) -> None:
        if root_certificates is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            opts = [("grpc.ssl_target_name_override", server_name)] if server_name else []
            self.channel = grpc.secure_channel(target, creds, options=opts)
        else:
            self.channel = grpc.insecure_channel(target)
        self.token = token
        self.org_id = org_id

    def metadata(
        self, token: str | None = _UNSET, org_id: str | None = _UNSET, extra: Sequence[tuple[str, str]] = ()
    ) -> list[tuple[str, str]]:
        tok = self.token if token is _UNSET else token
        org = self.org_id if org_id is _UNSET else org_id
        md = [("authorization", f"Bearer {tok}")] if tok else []
        if org:
            md.append(("x-target-org-id", org))
        return md + list(extra)

    def call(
        self,
        method: str,
        request: Any = None,
        *,
        token: str | None = _UNSET,
        org_id: str | None = _UNSET,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float = 10.0,
        **fields: Any,
    ) -> Any:
        """A unary call (server-streaming calls return the list of messages)."""
        m = _catalog.method(method)
        req = request if request is not None else m.request_class(**fields)
        md = tuple(self.metadata(token, org_id, metadata))
        ser, de = m.request_class.SerializeToString, m.response_class.FromString
        if m.kind == "unary_unary":
            return self.channel.unary_unary(m.path, ser, de)(req, metadata=md, timeout=timeout)
        if m.kind == "unary_stream":
            return list(self.channel.unary_stream(m.path, ser, de)(req, metadata=md, timeout=timeout))
        raise TypeError(f"{m.full_name} takes a request stream: use stream()")

    def stream(
        self, method: str, requests: Iterable[Any], *, token: str | None = _UNSET, timeout: float = 10.0
    ) -> list[Any]:
        m = _catalog.method(method)
        ser, de = m.request_class.SerializeToString, m.response_class.FromString
        md = tuple(self.metadata(token))
        if m.server_streaming:
            return list(
                self.channel.stream_stream(m.path, ser, de)(iter(requests), metadata=md, timeout=timeout)
            )
        return [self.channel.stream_unary(m.path, ser, de)(iter(requests), metadata=md, timeout=timeout)]

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> RawCaller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
