"""Flags shared by every ``invora`` subcommand that talks to the API, and the client built from them.

Every flag has an ``INVORA_<NAME>`` environment fallback (``--client-secret`` ← ``INVORA_CLIENT_SECRET``)
so secrets need not appear on command lines, where other users of the machine can read them. Values are
resolved when the client is built, not when the parser is, so an explicit flag always beats the
environment and errors can say where a bad value came from. Secrets are never echoed back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TextIO, overload

if TYPE_CHECKING:
    from invora import AsyncClient, Client, Credentials

__all__ = [
    "CREDENTIAL_FLAGS",
    "EXIT_AUTH",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_RPC",
    "EXIT_USAGE",
    "FLAGS",
    "UsageError",
    "add_common_flags",
    "client_from_args",
    "common_parent",
    "credentials_from_args",
    "read_data",
    "read_json",
    "resolve",
]

#: Exit codes of the ``invora`` command (documented in docs/cli.md).
EXIT_OK = 0
EXIT_RPC = 1  # the call ended with a non-OK status (including UNAVAILABLE: target unreachable)
EXIT_USAGE = 2  # bad flags, unknown method, malformed JSON, invalid configuration
EXIT_AUTH = 3  # the token endpoint refused or failed (no RPC was attempted)
EXIT_INTERNAL = 70  # a bug in the CLI or SDK (EX_SOFTWARE); INVORA_DEBUG=1 shows the traceback


class UsageError(Exception):
    """A problem with what the user typed: exit code 2, message only, no traceback."""


@dataclass(frozen=True)
class Flag:
    name: str  # option name without dashes, e.g. "client-secret"
    help: str
    choices: tuple[str, ...] | None = None
    secret: bool = False

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return "INVORA_" + self.dest.upper()


FLAGS: tuple[Flag, ...] = (
    Flag("target", "gRPC 'host:port' (or 'https://host'; the REST base URL with --transport rest)"),
    Flag("transport", "wire protocol (default grpc)", choices=("grpc", "rest")),
    Flag("token-url", "OAuth2 token endpoint (default https://auth.invora.app/oauth/v2/token)"),
    Flag("client-id", "client id for the client_credentials grant"),
    Flag(
        "client-secret",
        "client secret: prefer the environment variable (command lines are visible to other users); "
        "one starting with '-' needs --client-secret=VALUE",
        secret=True,
    ),
    Flag("token", "a static bearer token, e.g. a personal access token", secret=True),
    Flag("org-id", "act on this organization (x-target-org-id); default: the token's home org"),
    Flag(
        "env", "Invora environment when no --target is given (default production)", ("staging", "production")
    ),
    Flag("data", "request as JSON: inline, @file, or - for stdin"),
)
_BY_DEST = {f.dest: f for f in FLAGS}


#: The flags that only obtain a token (``invora token``): no target, tenancy or request.
CREDENTIAL_FLAGS = ("token-url", "client-id", "client-secret", "token")


def add_common_flags(parser: argparse.ArgumentParser, names: Collection[str] | None = None) -> None:
    """Add ``--target --transport --token-url --client-id --client-secret --token --org-id --env --data``
    (or only ``names``)."""
    group = parser.add_argument_group("connection (each flag falls back to INVORA_<NAME> in the environment)")
    for flag in FLAGS:
        if names is not None and flag.name not in names:
            continue
        group.add_argument(
            "--" + flag.name,
            dest=flag.dest,
            default=None,
            metavar=flag.dest.upper() if flag.choices is None else "{" + ",".join(flag.choices) + "}",
            help=f"{flag.help} [env {flag.env}]",
        )


def common_parent(names: Collection[str] | None = None) -> argparse.ArgumentParser:
    """A parent parser carrying the common flags, or only ``names`` (``argparse`` ``parents=[...]``)."""
    parent = argparse.ArgumentParser(add_help=False)
    add_common_flags(parent, names)
    return parent


def resolve(args: argparse.Namespace, dest: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The flag's value, else its ``INVORA_*`` variable, else None; validated against its choices."""
    flag = _BY_DEST[dest]
    value = getattr(args, dest, None)
    source = "--" + flag.name
    if value is None:
        value = (os.environ if environ is None else environ).get(flag.env) or None
        source = flag.env
    if value is not None and flag.choices is not None and value not in flag.choices:
        raise UsageError(f"{source}: invalid value {value!r} (choose from {', '.join(flag.choices)})")
    return value


def _explicit(args: argparse.Namespace, dest: str) -> bool:
    return getattr(args, dest, None) is not None


def credentials_from_args(args: argparse.Namespace) -> Credentials | None:
    """``--token`` (static) or ``--client-id``/``--client-secret`` (client credentials), or None."""
    from invora import ClientCredentials, ConfigurationError, StaticToken

    token = resolve(args, "token")
    client_id = resolve(args, "client_id")
    secret = resolve(args, "client_secret")
    if token is not None and client_id is not None:
        # An explicit flag wins over the other kind coming from the environment.
        if _explicit(args, "token") and not _explicit(args, "client_id"):
            client_id = secret = None
        elif _explicit(args, "client_id") and not _explicit(args, "token"):
            token = None
        else:
            raise UsageError("give either --token or --client-id/--client-secret, not both")
    try:
        if token is not None:
            return StaticToken(token)
        if client_id is None and secret is None:
            return None
        if client_id is None:
            raise UsageError("--client-secret needs --client-id (or INVORA_CLIENT_ID)")
        if secret is None:
            raise UsageError("--client-id needs --client-secret (or INVORA_CLIENT_SECRET)")
        return ClientCredentials(client_id, secret, resolve(args, "token_url"))
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None


@overload
def client_from_args(
    args: argparse.Namespace,
    *,
    asynchronous: Literal[False] = False,
    options: Mapping[str, Any] | None = None,
) -> Client: ...
@overload
def client_from_args(
    args: argparse.Namespace, *, asynchronous: Literal[True], options: Mapping[str, Any] | None = None
) -> AsyncClient: ...
def client_from_args(
    args: argparse.Namespace, *, asynchronous: bool = False, options: Mapping[str, Any] | None = None
) -> Client | AsyncClient:
    """An :class:`invora.Client` (or ``AsyncClient``) configured from the common flags and environment.

    ``options`` are further client keyword arguments and win over the flags (``invora bench`` shares one
    ``credentials`` object between its channels this way). Configuration problems (bad target, bad org id, plaintext to a remote host…) raise
    :class:`UsageError` before any network.
    """
    import invora

    target = resolve(args, "target")
    env = resolve(args, "env")
    if target is not None and env is not None:
        if _explicit(args, "target") and _explicit(args, "env"):
            raise UsageError("give either --target or --env, not both")
        if _explicit(args, "env"):
            target = None
        else:
            env = None
    options = dict(options or {})
    kwargs: dict[str, Any] = {
        "org_id": resolve(args, "org_id"),
        "transport": resolve(args, "transport") or "grpc",
    }
    if "credentials" not in options:
        kwargs["credentials"] = credentials_from_args(args)
    if target is None:
        kwargs["environment"] = env or "production"
    kwargs.update(options)
    cls = invora.AsyncClient if asynchronous else invora.Client
    try:
        return cls(target, **kwargs)
    except invora.ConfigurationError as exc:
        raise UsageError(str(exc)) from None


def read_json(args: argparse.Namespace, *, stdin: TextIO | None = None) -> Any:
    """The JSON value given by ``--data`` / ``INVORA_DATA``: inline, ``@file``, or ``-`` for stdin.

    Without any, stdin is read when it is not a terminal (``echo '{...}' | invora call ...``); None means
    nothing was given. Raises :class:`UsageError` on unreadable files or malformed JSON.
    """
    stream = sys.stdin if stdin is None else stdin
    raw = resolve(args, "data")
    if raw is None:
        if stream is None or stream.closed or stream.isatty():
            return None
        raw = "-"
    if raw == "-":
        text, origin = stream.read(), "stdin"
    elif raw.startswith("@"):
        path = raw[1:]
        origin = path
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise UsageError(f"cannot read --data file {path!r}: {exc.strerror}") from None
    else:
        text, origin = raw, "--data"
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"invalid JSON in {origin}: {exc}") from None


def read_data(args: argparse.Namespace, *, stdin: TextIO | None = None) -> dict[str, Any] | None:
    """Like :func:`read_json` but the value must be a JSON object (one request)."""
    value = read_json(args, stdin=stdin)
    if value is not None and not isinstance(value, dict):
        raise UsageError(f"the request must be a JSON object, got {type(value).__name__}")
    return value
