"""Connection settings from ``INVORA_*`` values: the one reader behind ``Client.from_env()``, the CLI,
``invora bench`` and Locust.

A setting comes from a flag (explicit) or from the environment. The reader decides the target (or Invora
environment), the credentials and the tenancy, and refuses mixed sandbox/production settings before anything
is sent: a loopback target with Invora's token endpoint would post a sandbox secret to production, and a
loopback token endpoint with a remote target would send a sandbox token there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from invora.auth import ClientCredentials, Credentials, StaticToken
from invora.errors import ConfigurationError

__all__ = ["VARIABLES", "Setting", "client_kwargs", "credentials", "from_environ"]

#: Setting name -> environment variable.
VARIABLES = {
    name: "INVORA_" + name.upper()
    for name in ("target", "transport", "token_url", "client_id", "client_secret", "token", "org_id", "env")
}
_CHOICES = {"transport": ("grpc", "rest"), "env": ("staging", "production")}


@dataclass(frozen=True)
class Setting:
    value: str | None
    source: str  # where it came from, for messages: "--target" or "INVORA_TARGET"
    explicit: bool = False  # given as a flag (wins over the environment)


Lookup = Callable[[str], Setting]


def from_environ(environ: Mapping[str, str] | None = None) -> Lookup:
    """Settings read from ``INVORA_*`` variables only (empty values count as unset)."""
    env = os.environ if environ is None else environ

    def lookup(name: str) -> Setting:
        var = VARIABLES[name]
        return Setting(env.get(var) or None, var)

    return lookup


def _value(get: Lookup, name: str) -> str | None:
    s = get(name)
    choices = _CHOICES.get(name)
    if s.value is not None and choices is not None and s.value not in choices:
        raise ConfigurationError(f"{s.source}: invalid value {s.value!r} (choose from {', '.join(choices)})")
    return s.value


def credentials(get: Lookup) -> Credentials | None:
    """A static token, client credentials, or None; an explicit flag wins over the other kind."""
    token, client_id, secret = (_value(get, n) for n in ("token", "client_id", "client_secret"))
    if token is not None and client_id is not None:
        if get("token").explicit and not get("client_id").explicit:
            client_id = secret = None
        elif get("client_id").explicit and not get("token").explicit:
            token = None
        else:
            raise ConfigurationError("give either --token or --client-id/--client-secret, not both")
    if token is not None:
        return StaticToken(token)
    if client_id is None and secret is None:
        return None
    if client_id is None:
        raise ConfigurationError("--client-secret needs --client-id (or INVORA_CLIENT_ID)")
    if secret is None:
        raise ConfigurationError("--client-id needs --client-secret (or INVORA_CLIENT_SECRET)")
    return ClientCredentials(client_id, secret, _value(get, "token_url"))


def client_kwargs(get: Lookup, options: Mapping[str, Any] | None = None) -> tuple[str | None, dict[str, Any]]:
    """``(target, keyword arguments)`` for ``Client``/``AsyncClient``; ``options`` win over the settings."""
    target, env = _value(get, "target"), _value(get, "env")
    if target is not None and env is not None:
        if get("target").explicit and get("env").explicit:
            raise ConfigurationError("give either --target or --env, not both")
        if get("env").explicit:
            target = None
        else:
            env = None
    options = dict(options or {})
    kwargs: dict[str, Any] = {
        "org_id": _value(get, "org_id"),
        "transport": _value(get, "transport") or "grpc",
    }
    if "credentials" not in options:
        kwargs["credentials"] = credentials(get)
    if target is None:
        kwargs["environment"] = env or "production"
    kwargs.update(options)
    return target, kwargs


def check_same_world(get: Lookup, target: str | None, env: str | None, creds: Any) -> None:
    """Refuse sandbox (loopback) and remote settings mixed together (see the module docstring)."""
    from invora._target import is_loopback, parse_target

    if not isinstance(creds, ClientCredentials):
        return
    token_url = _value(get, "token_url")
    token_local = token_url is not None and is_loopback(urlsplit(token_url).hostname or "")
    target_local = target is not None and parse_target(target).loopback
    where = target if target is not None else f"the {env or 'production'} environment"
    if target_local and not token_local:
        raise ConfigurationError(
            f"the target {target} is local (a sandbox?) but the token endpoint is "
            f"{token_url or 'Invora production'}: pass --token-url (the sandbox's token_url) so the "
            "client secret is not sent elsewhere"
        )
    if token_local and not target_local:
        raise ConfigurationError(
            f"the token endpoint {token_url} is local (a sandbox?) but calls would go to {where}: pass "
            "--target with the sandbox's gRPC address"
        )


def build(cls: Any, get: Lookup, options: Mapping[str, Any] | None = None) -> Any:
    """A client of ``cls`` from the settings: configuration problems raise before any network."""
    target, kwargs = client_kwargs(get, options)
    client = cls(target, **kwargs)
    check_same_world(
        get, target, kwargs.get("environment") if target is None else None, kwargs.get("credentials")
    )
    return client
