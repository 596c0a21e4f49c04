"""Semantic checks for the ``validity`` component: the share of checks a document passes.

Each function returns a list of booleans (one per check). A check whose inputs are missing or do
not parse *fails*; it is never skipped, so an empty document cannot score well. Every number is
read through a bounded regular expression first (no huge integers, no exponent bombs).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from lxml import etree

from .credit import attributes, local_name, walk
from .schemas import CompiledSchema

_INT = re.compile(r"[+-]?\d{1,18}")
_DEC = re.compile(r"[+-]?(?:\d{1,18}(?:\.\d{0,12})?|\.\d{1,12})")
_TZ = r"(?:Z|[+-]\d{2}:\d{2})?"
_DATE = re.compile(rf"(\d{{4}})-(\d{{2}})-(\d{{2}}){_TZ}")
_DATETIME = re.compile(rf"(\d{{4}}-\d{{2}}-\d{{2}}T\d{{2}}:\d{{2}}:\d{{2}}(?:\.\d{{1,9}})?){_TZ}")
_FLOAT = re.compile(r"[+-]?(?:\d{1,400}(?:\.\d{0,400})?|\.\d{1,400})(?:[eE][+-]?\d{1,4})?|[+-]?INF|NaN")
_GYEAR = re.compile(rf"-?\d{{4,9}}{_TZ}")
_TOLERANCE = Decimal("0.01")
YEAR_RANGE = (1400, 2100)
"""Plausible publication years (inclusive)."""


def parse_int(text: str | None) -> int | None:
    """An integer of at most 18 digits, or ``None``."""
    if text is None or not _INT.fullmatch(text.strip()):
        return None
    return int(text.strip())


def parse_decimal(text: str | None) -> Decimal | None:
    """A decimal with at most 18 integer and 12 fraction digits, or ``None``."""
    if text is None or not _DEC.fullmatch(text.strip()):
        return None
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        return None


def parse_date(text: str | None) -> dt.date | None:
    """An ISO ``YYYY-MM-DD`` date (an XSD time-zone suffix is allowed and ignored), or ``None``."""
    match = _DATE.fullmatch(text.strip()) if text is not None else None
    if match is None:
        return None
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _blank(text: str | None) -> bool:
    return not (text or "").strip()


def bibliography_checks(root: etree._Element) -> list[bool]:
    """Checks for the built-in ``bibliography`` schema.

    No entry at all: one failed check. Otherwise: entry ids present and unique; per entry: a
    non-blank title, at least one author and no blank author, a year in :data:`YEAR_RANGE`, and
    (when ``pages`` is present) ``0 < start <= end``.
    """
    entries = root.findall("entry")
    if not entries:
        return [False]
    ids = [entry.get("id") for entry in entries]
    checks = [None not in ids and len(set(ids)) == len(ids)]
    for entry in entries:
        checks.append(not _blank(entry.findtext("title")))
        authors = entry.findall("authors/author")
        checks.append(bool(authors) and not any(_blank(author.text) for author in authors))
        year = parse_int(entry.findtext("year"))
        checks.append(year is not None and YEAR_RANGE[0] <= year <= YEAR_RANGE[1])
        pages = entry.find("pages")
        if pages is not None:
            start, end = parse_int(pages.get("start")), parse_int(pages.get("end"))
            checks.append(start is not None and end is not None and 0 < start <= end)
    return checks


def purchase_order_checks(root: etree._Element) -> list[bool]:
    """Checks for the built-in ``purchase-order`` schema.

    ``orderDate`` and ``shipDate`` are ISO dates and ``orderDate <= shipDate``; there is at least
    one item; per item: a positive integer quantity and a non-negative unit price; ``total`` equals
    the sum of quantity x unit price within 0.01.
    """
    order_date, ship_date = parse_date(root.get("orderDate")), parse_date(root.get("shipDate"))
    checks = [
        order_date is not None,
        ship_date is not None,
        order_date is not None and ship_date is not None and order_date <= ship_date,
    ]
    items = root.findall("items/item")
    checks.append(bool(items))
    computed, complete = Decimal(0), bool(items)
    for item in items:
        quantity = parse_int(item.findtext("quantity"))
        price = parse_decimal(item.findtext("unitPrice"))
        checks.append(quantity is not None and quantity > 0)
        checks.append(price is not None and price >= 0)
        if quantity is None or price is None:
            complete = False
        else:
            computed += quantity * price
    stated = parse_decimal(root.findtext("total"))
    checks.append(complete and stated is not None and abs(stated - computed) <= _TOLERANCE)
    return checks


def _typed_ok(kind: str, raw: str) -> bool | None:
    """Whether ``raw`` is a lexically valid value of built-in type ``kind`` (``None``: not checked)."""
    text = raw.strip()
    if kind == "date":
        return parse_date(text) is not None
    if kind == "dateTime":
        match = _DATETIME.fullmatch(text)
        if match is None:
            return False
        try:
            dt.datetime.fromisoformat(match[1])
        except ValueError:
            return False
        return True
    if kind == "gYear":
        return _GYEAR.fullmatch(text) is not None
    if kind == "decimal":
        return _DEC.fullmatch(text) is not None
    if kind in ("float", "double"):
        return _FLOAT.fullmatch(text) is not None
    if kind == "boolean":
        return text in ("true", "false", "1", "0")
    if kind in ("integer", "long", "int", "short", "byte") or kind.startswith("unsigned"):
        value = parse_int(text)
        return value is not None and (value >= 0 or not kind.startswith("unsigned"))
    if kind in ("positiveInteger", "nonNegativeInteger", "negativeInteger", "nonPositiveInteger"):
        value = parse_int(text)
        if value is None:
            return False
        return {
            "positiveInteger": value > 0,
            "nonNegativeInteger": value >= 0,
            "negativeInteger": value < 0,
            "nonPositiveInteger": value <= 0,
        }[kind]
    return None


def typed_value_checks(root: etree._Element, schema: CompiledSchema) -> list[bool]:
    """Generic checks for a record-supplied XSD: every leaf element and attribute whose name the
    XSD declares with a built-in date, dateTime, gYear, decimal, integer-family, float/double or
    boolean type (directly or through a named simple type) must hold a value of that type.
    Names declared with different types in different places are not checked."""
    checks: list[bool] = []
    for _, element in walk(root):
        kind = schema.element_types.get(local_name(element.tag))
        if kind and not len(element):
            verdict = _typed_ok(kind, element.text or "")
            if verdict is not None:
                checks.append(verdict)
        for name, value in attributes(element):
            kind = schema.attribute_types.get(name)
            verdict = _typed_ok(kind, value) if kind else None
            if verdict is not None:
                checks.append(verdict)
    return checks


def validity_score(root: etree._Element, schema: CompiledSchema) -> float:
    """Share of semantic checks passed; 1.0 for a record-supplied XSD where no check applies."""
    if schema.builtin == "bibliography":
        checks = bibliography_checks(root)
    elif schema.builtin == "purchase-order":
        checks = purchase_order_checks(root)
    else:
        checks = typed_value_checks(root, schema)
    if not checks:
        return 1.0
    return sum(checks) / len(checks)
