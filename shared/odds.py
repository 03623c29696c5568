"""Odds formats: one bet's price as American, decimal and fractional odds, converted once.

A price is held exactly, as the profit per unit staked (a `Fraction`: 10/11 for -110), and
written in three formats by fixed rules, so every producer and consumer agrees to the digit:

- **American**: `+100 * profit` when the profit is at least the stake (+150), else
  `-100 / profit` (-110); rounded half away from zero to a whole number. Even money is +100;
  -100 is accepted on input and means the same.
- **decimal**: `1 + profit`, rounded half up to 3 places (1.909, 2.5).
- **fractional**: the profit as a reduced fraction, `"10/11"`, `"1/1"` for evens. From an
  American or fractional price it is exact (-110 -> 10/11, -111 -> 100/111). A decimal
  price (rounded to 3 places first) has already lost precision, so from one it is the
  fraction with the smallest denominator that writes as the same decimal and the same
  American price (1.909 -> 10/11 and -110, 1.95 -> 19/20 and -105, 1.01 -> 1/100 and -10000).

Every `Price` is the three formats of its one exact fraction, so converting any of them back
gives the same `Price` (what lets a worker re-validate a stored event and get it unchanged).
Range: a profit from 1/1000 to 1000 (American -100000 to +100000, decimal 1.001 to 1001,
fractional 1/1000 to 1000/1); outside it, or between -100 and +100 exclusive, a price is an
`OddsError`. Conversions are cached: feeds repeat the same few hundred prices all day.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Final

__all__ = [
    "FORMATS",
    "MAX_PROFIT",
    "MIN_PROFIT",
    "OddsError",
    "Price",
    "from_american",
    "from_decimal",
    "from_fractional",
    "price_of",
]

#: The formats, in the order they are written.
FORMATS: Final = ("american", "decimal", "fractional")
MIN_PROFIT: Final = Fraction(1, 1000)
MAX_PROFIT: Final = Fraction(1000)
_FRACTION = re.compile(r"^\s*(\d{1,7})\s*/\s*(\d{1,7})\s*$")
_EVENS = frozenset({"evens", "evs", "even"})


class OddsError(ValueError):
    """A price that is not one: the message says which value and what would be valid."""


@dataclass(frozen=True, slots=True)
class Price:
    """One price in every format; `profit` is the exact value the others are written from."""

    profit: Fraction
    american: int
    decimal: float
    fractional: str

    def as_dict(self) -> dict[str, Any]:
        return {"american": self.american, "decimal": self.decimal, "fractional": self.fractional}


def _half_up(value: Fraction) -> int:
    """`value` rounded to a whole number, halves away from zero (values here are positive)."""
    return math.floor(value + Fraction(1, 2))


def _american(profit: Fraction) -> int:
    if profit >= 1:
        return _half_up(100 * profit)
    american = -_half_up(100 / profit)
    return 100 if american == -100 else american  # a hair under evens is quoted +100


def _of_profit(profit: Fraction) -> Price:
    if not MIN_PROFIT <= profit <= MAX_PROFIT:
        raise OddsError(
            f"a price must pay between 1/1000 and 1000 times the stake, not {profit} "
            "(American -100000..+100000, decimal 1.001..1001)"
        )
    decimal = _half_up((1 + profit) * 1000) / 1000
    return Price(profit, _american(profit), decimal, f"{profit.numerator}/{profit.denominator}")


def from_american(value: int) -> Price:
    """-110 -> 1.909, 10/11; +150 -> 2.5, 3/2; -100 and +100 are both evens (+100)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise OddsError(f"an American price is a whole number like -110 or 150, not {value!r}")
    return _from_american(value)


@lru_cache(maxsize=8192)
def _from_american(value: int) -> Price:
    if -100 < value < 100:
        raise OddsError(
            f"American price {value} is not a price: it is -100 or below, or +100 or above"
        )
    profit = Fraction(value, 100) if value > 0 else Fraction(100, -value)
    return _of_profit(profit)


def _simplest_fraction_of(thousandths: int) -> Fraction:
    """The fraction with the smallest denominator that writes as this decimal (1 + profit,
    rounded half up to 3 places) and as this decimal's own American price. The decimal's exact
    value (k / 1000) is one, so the search ends by a denominator of 1000."""
    k = thousandths - 1000
    american = _american(Fraction(k, 1000))
    low, high = 2 * k - 1, 2 * k + 1  # the profits that round to it: [low, high) / 2000
    for denominator in range(1, 1001):
        numerator = max(1, -((-low * denominator) // 2000))  # ceil(low * denominator / 2000)
        while numerator * 2000 < high * denominator:
            profit = Fraction(numerator, denominator)
            if _american(profit) == american:
                return profit
            numerator += 1
    raise AssertionError("unreachable: the exact value always fits")  # pragma: no cover


@lru_cache(maxsize=8192)
def _from_thousandths(thousandths: int) -> Price:
    if thousandths <= 1000:
        raise OddsError(f"decimal price {thousandths / 1000:g} is not above 1 (1.001 or more)")
    if thousandths > 1000 * (1 + MAX_PROFIT):
        raise OddsError(f"decimal price {thousandths / 1000:g} is above 1001")
    return _of_profit(_simplest_fraction_of(thousandths))


def from_decimal(value: float | int | str) -> Price:
    """1.909 -> -110, 10/11; 2.5 -> +150, 3/2; rounded to 3 places first (1.9091 is 1.909)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise OddsError(f"a decimal price is a number like 1.909, not {value!r}")
    return _from_decimal(value)


@lru_cache(maxsize=8192, typed=True)
def _from_decimal(value: float | int | str) -> Price:
    try:
        # A float as it was written (repr: 1.0005, not the binary 1.000499...).
        exact = Fraction(value.strip() if isinstance(value, str) else repr(value))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise OddsError(f"a decimal price is a number like 1.909, not {value!r}") from None
    if not exact < 2 * MAX_PROFIT:  # also keeps huge numbers away from the rounding below
        raise OddsError(f"decimal price {value} is above 1001")
    return _from_thousandths(_half_up(exact * 1000))


def from_fractional(text: str) -> Price:
    """ "10/11" -> -110, 1.909; "3/2" -> +150, 2.5; "evens" is 1/1; reduced ("2/4" is 1/2)."""
    if not isinstance(text, str):
        raise OddsError(f'a fractional price is a text like "10/11", not {text!r}')
    return _from_fractional(text)


@lru_cache(maxsize=8192)
def _from_fractional(text: str) -> Price:
    if text.strip().lower() in _EVENS:
        return _of_profit(Fraction(1))
    match = _FRACTION.match(text)
    if match is None:
        raise OddsError(f'fractional price {text!r} is not like "10/11" (or "evens")')
    numerator, denominator = int(match[1]), int(match[2])
    if numerator == 0 or denominator == 0:
        raise OddsError(f"fractional price {text!r} needs a numerator and denominator above 0")
    return _of_profit(Fraction(numerator, denominator))


_CONVERT: Final[Mapping[str, Callable[[Any], Price]]] = {
    "american": from_american,
    "decimal": from_decimal,
    "fractional": from_fractional,
}
#: Which given format a price is read from when several are: the most exact one.
_SOURCE_ORDER = ("fractional", "american", "decimal")


def price_of(given: Mapping[str, Any]) -> Price:
    """The price of a `{format: value}` mapping: one format, or several that agree exactly
    (as a stored price does: the others must be what the most exact one converts to)."""
    unknown = sorted(set(given) - set(FORMATS))
    if unknown:
        raise OddsError(f"unknown price format {unknown[0]!r}: use american, decimal or fractional")
    values = (given.get("fractional"), given.get("american"), given.get("decimal"))
    if all(v is None or isinstance(v, str | int | float) for v in values):
        return _price_of(*values)  # cached: a worker checks every stored price again
    return _price_of_uncached(given)


@lru_cache(maxsize=8192, typed=True)
def _price_of(fractional: Any, american: Any, decimal: Any) -> Price:
    return _price_of_uncached({"fractional": fractional, "american": american, "decimal": decimal})


def _price_of_uncached(given: Mapping[str, Any]) -> Price:
    formats = [f for f in _SOURCE_ORDER if given.get(f) is not None]
    if not formats:
        raise OddsError("a price needs one of american, decimal or fractional")
    price = _CONVERT[formats[0]](given[formats[0]])
    for other in formats[1:]:
        value = given[other]
        # Compared as written (so -100 is +100, 1.9091 is 1.909), not as exact fractions: a
        # decimal's fraction is the simplest one, which its American price need not convert to.
        if getattr(_CONVERT[other](value), other) != getattr(price, other):
            raise OddsError(
                f"{formats[0]} {given[formats[0]]} is {other} {getattr(price, other)}, "
                f"not {value}: give one format, the others are computed"
            )
    return price
