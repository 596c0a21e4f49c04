"""Bounded, exact number handling for GSM8K answers.

Everything here works on untrusted text without ``eval``: a number is accepted only when a
bounded regular expression matches it, and its value is built as a :class:`fractions.Fraction`
from the digits the expression captured. Values with more than :data:`MAX_DIGITS` digits (or a
magnitude of ``10**MAX_DIGITS`` or more) are refused, so exponent bombs and 100 000-digit
numbers cost microseconds and never compare equal to anything.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

MAX_DIGITS = 50
"""Numbers with more significant digits than this (integer + fraction part) are refused."""
MAX_NUMBER_TEXT = 80
"""A numeric string longer than this (after stripping white space) is refused unparsed."""
SCAN_WINDOW = 4096
""":func:`last_number` only looks at this many trailing characters of a text."""
REL_TOLERANCE = Fraction(1, 10**9)
"""Relative tolerance for *non-integer* references (integers must match exactly)."""

_LIMIT = 10**MAX_DIGITS

# One number as a whole string: optional sign, optional currency sign, digits with either no
# separators or correct thousands groups, an optional fraction, a short exponent, an optional
# percent sign and a sentence-ending full stop. Every quantifier is bounded or linear.
_NUMBER_TEXT = re.compile(
    r"""
    (?P<sign>[+-]?)[ ]?
    (?:[$€£][ ]?)?
    (?P<sign2>[+-]?)
    (?P<int>\d{1,3}(?:,\d{3})+|\d+)?
    (?:\.(?P<frac>\d+))?
    (?:[eE](?P<exp>[+-]?\d{1,2}))?
    [ ]?%?
    \.?
    """,
    re.X,
)

# A number inside running text: a minus sign counts only when it does not follow a word
# character or a closing bracket (so "10-5" is 10 and 5, while "= -5" is -5).
_NUMBER_IN_TEXT = re.compile(r"(?:(?<![\w)])(?P<minus>-))?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?")


def _bounded(value: Fraction) -> Fraction | None:
    return value if abs(value) < _LIMIT else None


def _from_parts(int_part: str, frac_part: str, exp: str, negative: bool) -> Fraction | None:
    digits = int_part.replace(",", "") + frac_part
    if not digits or len(digits.lstrip("0")) > MAX_DIGITS:
        return None
    value = Fraction(int(digits), 10 ** len(frac_part))
    if exp:
        power = int(exp)
        value = value * 10**power if power >= 0 else value / 10**-power
    return _bounded(-value if negative else value)


def parse_number_text(text: str) -> Fraction | None:
    """Parse one number written as text, tolerantly; ``None`` when it is not a bounded number.

    Accepted: surrounding white space, a sign, a currency sign (``$1,000``), thousands separators
    in correct groups of three (``2,125``), a decimal part (``1000.0``, ``.5``), a one- or
    two-digit exponent (``1e3``), a trailing percent sign (``50%`` is the number 50) and a
    trailing full stop. Refused: anything else (words, units, expressions such as ``9**9``,
    ``10^10``, exponents of three or more digits, more than :data:`MAX_DIGITS` digits).
    """
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not text or len(text) > MAX_NUMBER_TEXT:
        return None
    match = _NUMBER_TEXT.fullmatch(text)
    if match is None:
        return None
    int_part, frac_part = match.group("int") or "", match.group("frac") or ""
    if not int_part and not frac_part:
        return None
    if match.group("sign") and match.group("sign2"):
        return None
    negative = "-" in (match.group("sign") + match.group("sign2"))
    return _from_parts(int_part, frac_part, match.group("exp") or "", negative)


def number_value(value: Any) -> Fraction | None:
    """The exact value of a parsed JSON answer (int, float or numeric string), else ``None``.

    Booleans, NaN, infinities, containers and values of ``10**MAX_DIGITS`` or more give ``None``.
    Floats are read through their shortest ``repr`` so ``0.1`` is exactly one tenth.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if value.bit_length() > 4 * MAX_DIGITS:  # cheap guard before any arithmetic
            return None
        return _bounded(Fraction(value))
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= 1e50:
            return None
        return _bounded(Fraction(repr(value)))
    if isinstance(value, str):
        return parse_number_text(value)
    return None


def numbers_equal(answer: Fraction, reference: Fraction) -> bool:
    """Exact equality for integer references; relative tolerance ``1e-9`` for non-integers."""
    if reference.denominator == 1:
        return answer == reference
    return abs(answer - reference) <= abs(reference) * REL_TOLERANCE


def canonical_number(value: Fraction) -> str:
    """The plain decimal string of a terminating value: ``2125``, ``-3.5``, ``0.25``.

    Raises ``ValueError`` for values with no terminating decimal expansion (e.g. 1/3).
    """
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value.denominator == 1:
        return f"{sign}{value.numerator}" if value else "0"
    rest, twos, fives = value.denominator, 0, 0
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    if rest != 1:
        raise ValueError(f"{value} has no terminating decimal expansion")
    places = max(twos, fives)
    digits = str(value.numerator * 10**places // value.denominator).rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}".rstrip("0").rstrip(".")


def json_number(value: Fraction) -> int | float:
    """The JSON number for ``value``: an ``int`` when it is whole, else the nearest ``float``."""
    return value.numerator if value.denominator == 1 else float(value)


def last_number(text: str, window: int = SCAN_WINDOW) -> Fraction | None:
    """The last number written in ``text`` (only its last ``window`` characters are scanned).

    Understands thousands separators and decimals; a minus sign counts only when it does not
    follow a word character (``10-5`` ends with 5, ``= -5`` with -5). ``None`` when there is no
    number or the last one exceeds :data:`MAX_DIGITS` digits.
    """
    if not isinstance(text, str):
        return None
    last = None
    for match in _NUMBER_IN_TEXT.finditer(text[-window:]):
        last = match
    if last is None:
        return None
    return _from_parts(last.group("int"), last.group("frac") or "", "", bool(last.group("minus")))
