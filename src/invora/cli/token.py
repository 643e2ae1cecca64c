"""``invora token``: fetch an access token and show what it grants — never the token or the secret.

The claims are decoded without verifying the signature: this is a diagnostic of what the token endpoint
issued (expiry, subject, home organization, scopes, roles), not an authorization decision.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from invora.cli.common import CREDENTIAL_FLAGS, EXIT_OK, UsageError, common_parent, credentials_from_args

__all__ = ["decode_claims", "register"]


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    # Only the credential flags: a token does not depend on the target, the tenancy or a request.
    p = sub.add_parser(
        "token",
        parents=[common_parent(CREDENTIAL_FLAGS)],
        help="fetch a token and show its expiry, subject, org and scopes",
        description="Fetch an access token with the client credentials (or inspect --token) and print its "
        "expiry, subject, organization and scopes. The token itself is printed only with --print-token "
        "(and then nothing else, for $(invora token --print-token)); the client secret never is.",
    )
    p.add_argument("--print-token", action="store_true", help="print only the access token")
    p.add_argument("--output", "-o", choices=("text", "json"), default="text")
    p.set_defaults(handler=run_token)


def decode_claims(token: str) -> dict[str, Any] | None:
    """The JWT payload (unverified), or None for an opaque token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


def _when(epoch: Any) -> str | None:
    if not isinstance(epoch, (int, float)):
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    sign = "-" if seconds < 0 else ""
    h, rem = divmod(abs(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{sign}{h}h{m:02d}m{s:02d}s" if h else f"{sign}{m}m{s:02d}s"


def run_token(args: argparse.Namespace) -> int:
    from invora import ClientCredentials

    creds = credentials_from_args(args)
    if creds is None:
        raise UsageError(
            "invora token needs --client-id and --client-secret (or INVORA_CLIENT_ID/INVORA_CLIENT_SECRET), "
            "or --token to inspect a token"
        )
    try:
        (_, value), *_ = creds.metadata()
    finally:
        creds.close()
    token = value.split(" ", 1)[1] if value.lower().startswith("bearer ") else value
    if args.print_token:
        sys.stdout.write(token + "\n")
        return EXIT_OK
    claims = decode_claims(token)
    info: dict[str, Any] = {}
    if isinstance(creds, ClientCredentials):
        info["token_url"] = creds.token_url
        info["client_id"] = creds.client_id
    else:
        info["source"] = "static token (--token)"
    info["format"] = "jwt" if claims is not None else "opaque"
    if claims is not None:
        scope = claims.get("scope", claims.get("scp", ""))
        info.update(
            {
                "subject": claims.get("sub"),
                "org_id": claims.get("org_id"),
                "scopes": scope.split() if isinstance(scope, str) else list(scope or []),
                "roles": claims.get("roles") or {},
                "issuer": claims.get("iss"),
                "audience": claims.get("aud"),
                "issued_at": _when(claims.get("iat")),
                "expires_at": _when(claims.get("exp")),
            }
        )
        exp = claims.get("exp")
        if isinstance(exp, (int, float)):
            info["expires_in"] = int(exp - time.time())
    if args.output == "json":
        from invora.cli._output import dump_json

        dump_json(info)
        return EXIT_OK
    rows: list[tuple[str, str]] = []
    for key, label in (
        ("token_url", "token endpoint"),
        ("client_id", "client id"),
        ("source", "source"),
        ("format", "format"),
        ("subject", "subject"),
        ("org_id", "home org"),
        ("issuer", "issuer"),
        ("audience", "audience"),
        ("issued_at", "issued at"),
    ):
        if info.get(key):
            rows.append((label, str(info[key])))
    if "expires_at" in info:
        left = info.get("expires_in")
        state = (
            ""
            if left is None
            else (f" (in {_duration(left)})" if left > 0 else f" (EXPIRED {_duration(-left)} ago)")
        )
        rows.append(("expires at", f"{info['expires_at']}{state}"))
    if "scopes" in info:
        rows.append(("scopes", " ".join(info["scopes"]) or "(none)"))
    for org, roles in sorted(info.get("roles", {}).items()):
        shown = ", ".join(roles) if isinstance(roles, list) else str(roles)
        rows.append(("roles", f"{org}: {shown}"))
    if claims is None:
        rows.append(("claims", "not a JWT: expiry and scopes are not visible to the client"))
    width = max(len(k) for k, _ in rows)
    sys.stdout.write("".join(f"{k.ljust(width)}  {v}\n" for k, v in rows))
    return EXIT_OK
