"""The one parser for untrusted JSON: bounded in size and nesting, and strict about non-JSON constants.

``json.loads`` recurses once per nesting level and raises ``RecursionError`` (not a ``ValueError``) on a
deep enough document; protobuf's ``ParseDict``, ``repr`` and user code recurse on what it returns. Every
parse site of input from the network or from a caller (REST responses and error bodies, token endpoint
answers, JWT headers and claims, webhook bodies, the sandbox's REST request bodies) goes through
:func:`loads`, which measures the depth first with C-speed string operations and raises ``ValueError``
(each site maps it to its own typed error). ``NaN`` and ``Infinity``, which Python accepts but JSON does
not have, are refused: a ``NaN`` expiry compares false with everything and would never expire.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

__all__ = ["MAX_DEPTH", "loads"]

#: Deepest nesting accepted (protobuf's own JSON parser stops at 100 too).
MAX_DEPTH = 100

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Every byte but the four brackets (UTF-8 continuation bytes are never ASCII, so bytes are safe here).
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DELTA = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _deepest(data: bytes) -> int:
    brackets = data.translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)


def depth(data: bytes, limit: int = MAX_DEPTH) -> int:
    """The deepest ``[``/``{`` nesting of ``data`` (brackets inside strings do not count); any value up
    to ``limit`` may be an upper bound rather than the exact depth."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return limit
    found = _deepest(data)  # counts brackets inside strings too: an upper bound, usually exact
    return found if found <= limit else _deepest(_STRINGS.sub(b"", data))


def loads(data: bytes | str, *, max_bytes: int, max_depth: int = MAX_DEPTH, what: str = "JSON") -> Any:
    """Parse ``data`` as JSON; ``ValueError`` naming ``what`` when it is too large, too deep or invalid."""
    if len(data) > max_bytes:
        raise ValueError(f"{what} is {len(data)} bytes, more than the {max_bytes} accepted")
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    found = depth(raw, max_depth)
    if found > max_depth:
        raise ValueError(f"{what} is nested {found} levels deep, more than the {max_depth} accepted")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:  # defensive: the depth check above makes this unreachable
        raise ValueError(f"{what} is nested too deeply") from None
