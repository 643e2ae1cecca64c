"""Request templates: one JSON request with placeholders, rendered into a fresh message per call.

Placeholders appear inside JSON strings and are replaced by text (proto3 JSON accepts quoted numbers for
every integer type, so ``"{{seq}}"`` fills an ``int64`` as well as a ``string``):

==========================  ==========================================================================
``{{uuid}}``                a random UUID4 (``request_id``, ``transaction_id``: unique per call)
``{{seq}}``                 the call's sequence number in this run: 1, 2, 3, …
``{{choice:a,b,c}}``        one of the comma-separated values, uniformly at random
``{{randint:LO,HI}}``       an integer in ``[LO, HI]``
``{{now}}``                 the current UTC time, RFC 3339 with milliseconds (``Timestamp`` fields)
==========================  ==========================================================================

A template without placeholders is parsed once and the same message is sent every time (the client
never mutates a request it is given), so static requests cost nothing per call.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import random
import re
import uuid
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

__all__ = ["PLACEHOLDERS", "Template", "TemplateError"]

PLACEHOLDERS = ("uuid", "seq", "choice:a,b,…", "randint:LO,HI", "now")
_TOKEN = re.compile(r"\{\{([^{}]*)\}\}")


class TemplateError(ValueError):
    """The template is not a valid request: an unknown placeholder or JSON the message does not accept."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Template:
    """A compiled request template for one request message class."""

    def __init__(
        self,
        request_class: type[Message],
        data: Any,
        *,
        seed: int | None = None,
        seq: tuple[int, int] = (1, 1),
    ) -> None:
        """``seq``: the first ``{{seq}}`` value and the step (worker *i* of *N* takes ``(i + 1, N)``, so
        the workers of ``invora bench --processes`` never render the same number)."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise TemplateError(f"the request template must be a JSON object, got {type(data).__name__}")
        self._cls = request_class
        self._data = data
        self._rng = random.Random(seed)
        self._seq_from = seq
        self._seq = itertools.count(*seq)
        self._current_seq = 0
        self.dynamic = _has_placeholder(data)
        self._static: Message | None = None
        # Validate now (placeholders and field names), so a typo fails before any load is generated.
        sample = self._parse(self._fill(data)) if self.dynamic else self._parse(data)
        if not self.dynamic:
            self._static = sample
        self._seq = itertools.count(*self._seq_from)

    def render(self) -> Message:
        """The next request (a new message when the template has placeholders)."""
        if self._static is not None:
            return self._static
        return self._parse(self._fill(self._data))

    # -- internals ------------------------------------------------------------------------------------
    def _parse(self, data: Any) -> Message:
        message = self._cls()
        try:
            json_format.ParseDict(data, message)
        except json_format.ParseError as exc:
            raise TemplateError(f"invalid request for {message.DESCRIPTOR.full_name}: {exc}") from None
        return message

    def _fill(self, value: Any) -> Any:
        self._current_seq = next(self._seq)
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return _TOKEN.sub(self._replace, value) if "{{" in value else value
        if isinstance(value, dict):
            return {k: self._walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        return value

    def _replace(self, match: re.Match[str]) -> str:
        name, colon, rest = match.group(1).partition(":")
        name, arg = name.strip(), (rest if colon else None)
        fn = _GENERATORS.get(name)
        if fn is None:
            raise TemplateError(
                f"unknown placeholder {match.group(0)!r}; available: "
                + ", ".join("{{" + p + "}}" for p in PLACEHOLDERS)
            )
        return fn(self, arg)


def _uuid(t: Template, arg: str | None) -> str:
    return str(uuid.uuid4())


def _seq(t: Template, arg: str | None) -> str:
    return str(t._current_seq)


def _choice(t: Template, arg: str | None) -> str:
    options = [o.strip() for o in (arg or "").split(",") if o.strip()]
    if not options:
        raise TemplateError("{{choice:...}} needs comma-separated values, e.g. {{choice:EGP,SAR,USD}}")
    return t._rng.choice(options)


def _randint(t: Template, arg: str | None) -> str:
    try:
        lo, hi = (int(x) for x in (arg or "").split(","))
    except ValueError:
        raise TemplateError("{{randint:LO,HI}} needs two integers, e.g. {{randint:1,100}}") from None
    if lo > hi:
        raise TemplateError(f"{{{{randint:{lo},{hi}}}}}: LO must not exceed HI")
    return str(t._rng.randint(lo, hi))


def _time(t: Template, arg: str | None) -> str:
    return _now()


_GENERATORS: dict[str, Callable[[Template, str | None], str]] = {
    "uuid": _uuid,
    "seq": _seq,
    "choice": _choice,
    "randint": _randint,
    "now": _time,
}


def _has_placeholder(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, dict):
        return any(_has_placeholder(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_placeholder(v) for v in value)
    return False
