"""Exact conversion between ``kernel.DecimalValue {int64 units; sfixed32 nanos}`` and :class:`decimal.Decimal`.

Money never goes through ``float``: ``units`` is the whole part and ``nanos`` the 10⁻⁹ fraction, both with
the same sign (``-1.5`` is ``units=-1, nanos=-500000000``). Values with more than nine fractional digits
are rounded half-even, the way amounts are rounded everywhere else in the API.
"""

from __future__ import annotations

import decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from invora._proto.kernel.decimal_pb2 import DecimalValue as DecimalValue
else:
    from invora._proto.kernel.decimal_pb2 import DecimalValue

__all__ = ["DecimalValue", "from_decimal", "to_decimal"]

_NANO = decimal.Decimal("1e-9")
_BILLION = 1_000_000_000
_INT64_MAX = 2**63 - 1
# Enough precision for any int64 units plus nine fractional digits, whatever the caller's context says.
_CTX = decimal.Context(prec=40, rounding=decimal.ROUND_HALF_EVEN)


def to_decimal(value: Any) -> decimal.Decimal:
    """The exact :class:`~decimal.Decimal` of a ``DecimalValue`` (an unset message is ``0``)."""
    units = int(value.units)
    nanos = int(value.nanos)
    if not -_BILLION < nanos < _BILLION:
        raise ValueError(f"DecimalValue.nanos out of range: {nanos}")
    if (units > 0 and nanos < 0) or (units < 0 and nanos > 0):
        raise ValueError(f"DecimalValue units and nanos have different signs: {units}, {nanos}")
    if nanos == 0:
        return decimal.Decimal(units)
    # Exact: an integer count of nanos scaled down, trailing zeros of the fraction dropped ("12.5").
    return decimal.Decimal(units * _BILLION + nanos).scaleb(-9, context=_CTX).normalize(_CTX)


def from_decimal(value: decimal.Decimal | str | int) -> DecimalValue:
    """A ``DecimalValue`` for ``value`` (``Decimal``, ``int`` or a decimal string such as ``"12.50"``).

    ``float`` is refused: its binary rounding is exactly what this type exists to avoid."""
    if isinstance(value, float):
        raise TypeError("from_decimal() takes Decimal, str or int, not float (pass str(x) if you must)")
    if isinstance(value, bool) or not isinstance(value, (decimal.Decimal, str, int)):
        raise TypeError(f"from_decimal() takes Decimal, str or int, not {type(value).__name__}")
    try:
        d = decimal.Decimal(value.strip() if isinstance(value, str) else value)
    except decimal.InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"DecimalValue cannot hold {value!r}")
    rounded = d.quantize(_NANO, context=_CTX)
    if d and not rounded:
        # Rounding the tenth decimal is expected; rounding a whole amount away is a unit mistake.
        raise ValueError(f"{value!r} is smaller than DecimalValue's resolution (1e-9) and would become 0")
    d = rounded
    sign = -1 if d < 0 else 1
    total_nanos = int(abs(d).scaleb(9, context=_CTX))
    units, nanos = divmod(total_nanos, _BILLION)
    if units > _INT64_MAX:
        raise ValueError(f"{value!r} does not fit DecimalValue.units (int64)")
    return DecimalValue(units=sign * units, nanos=sign * nanos)
