"""Seeded synthetic records for ``xml-records``: bibliographies and purchase orders.

Each record's prompt states every fact the XML must hold (a purchase order's total is stated as a
rule, sum of quantity x unit price, for the model to compute); the reference is built with lxml
and is valid under the built-in XSD. Records alternate at random between the two schemas.

Splits are disjoint by construction: a prompt belongs to exactly one split, chosen by a hash of
its text (the shared scheme of :mod:`rlstruct.splits`); the generator draws candidates and keeps
those of the asked split.

Difficulty (see docs/tasks/xml-records.md, "Difficulty") moves :class:`Knobs`:

- *repeated elements*: how many entries, authors and line items a document has;
- *attributes and optional elements*: the chance of each optional element (venue, ``<pages
  start end>``, doi, buyer email), so more attributes and elements at higher difficulty;
- *depth*: above the default, a share of records (up to 0.4) are document outlines, nested sections under
  an XSD given as text in the record (:data:`OUTLINE_XSD`), nested up to :attr:`Knobs.outline_depth`.

At the default difficulty (0.5, or ``None``) the records are exactly those of the original
generator: the same random draws in the same order.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from lxml import etree

from rlstruct.curriculum import DEFAULT_DIFFICULTY, check_difficulty, int_level, int_range, level
from rlstruct.splits import generate_split

# Word lists and catalogues the records are drawn from: data, in vocabulary.json next to this module
# (read once, at import). Their order is part of the generator: reordering one changes every record.
_WORDS = json.loads(Path(__file__).with_name("vocabulary.json").read_text(encoding="utf-8"))
_FIRST: list[str] = _WORDS["first_names"]
_LAST: list[str] = _WORDS["last_names"]
_ADJECTIVES: list[str] = _WORDS["title_adjectives"]
_NOUNS: list[str] = _WORDS["title_nouns"]
_TOPICS: list[str] = _WORDS["topics"]
_TITLE_FORMS: list[str] = _WORDS["title_forms"]
_VENUES: dict[str, list[str]] = _WORDS["venues"]
_DOI_TAGS: list[str] = _WORDS["doi_tags"]
_COMPANIES: list[str] = _WORDS["companies"]
_STREETS: list[str] = _WORDS["streets"]
_STREET_KINDS: list[str] = _WORDS["street_kinds"]
_CITIES: list[tuple[str, str]] = [(city, country) for city, country in _WORDS["cities"]]
_PRODUCTS: list[str] = _WORDS["products"]
_CURRENCIES: list[str] = _WORDS["currencies"]
_HEADINGS: list[str] = _WORDS["headings"]


@dataclass(frozen=True)
class Knobs:
    """What difficulty sets in the generator (the defaults are the original generator's)."""

    entries: tuple[int, int] = (1, 3)
    """Inclusive range of bibliography entries (easy (1, 1), hard (3, 6))."""
    authors: tuple[int, int] = (1, 4)
    """Inclusive range of authors per entry (easy (1, 2), hard (2, 6))."""
    items: tuple[int, int] = (1, 4)
    """Inclusive range of purchase-order line items (easy (1, 2), hard (3, 8))."""
    venue_chance: float = 0.85
    """Chance an entry has a ``venue`` (easy 0.5, hard 1)."""
    pages_chance: float = 0.8
    """Chance a non-book entry has ``<pages start end>``, two attributes (easy 0.3, hard 1)."""
    doi_chance: float = 0.6
    """Chance an entry has a ``doi`` (easy 0.2, hard 1)."""
    email_chance: float = 0.6
    """Chance an order's buyer has an ``email`` (easy 0.2, hard 1)."""
    outline_share: float = 0.0
    """Share of records that are nested outlines (0 up to the default, 0.4 at difficulty 1)."""
    outline_depth: int = 3
    """Deepest section nesting of an outline (3 at the default, 6 at difficulty 1); an outline's
    own depth is drawn from ``outline_depth - 1`` (at least 3) to ``outline_depth``, so an outline
    is never shallower than a bibliography or an order."""


def knobs_for(difficulty: float) -> Knobs:
    """The :class:`Knobs` at ``difficulty`` in [0, 1] (the defaults at 0.5)."""
    d = difficulty
    return Knobs(
        entries=int_range(d, (1, 1), (1, 3), (3, 6)),
        authors=int_range(d, (1, 2), (1, 4), (2, 6)),
        items=int_range(d, (1, 2), (1, 4), (3, 8)),
        venue_chance=level(d, 0.5, 0.85, 1.0),
        pages_chance=level(d, 0.3, 0.8, 1.0),
        doi_chance=level(d, 0.2, 0.6, 1.0),
        email_chance=level(d, 0.2, 0.6, 1.0),
        outline_share=level(d, 0.0, 0.0, 0.4),
        outline_depth=int_level(d, 3, 3, 6),
    )


def _ascii_slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def _serialize(root: etree._Element) -> str:
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="unicode")


def _text(parent: etree._Element, tag: str, text: str) -> etree._Element:
    child = etree.SubElement(parent, tag)
    child.text = text
    return child


# -- bibliography ---------------------------------------------------------------------------------
def _bib_entry(rng: random.Random, used_ids: set[str], knobs: Knobs) -> dict[str, Any]:
    kind = rng.choice(sorted(_VENUES))
    authors = [f"{rng.choice(_FIRST)} {last}" for last in rng.sample(_LAST, rng.randint(*knobs.authors))]
    year = rng.randint(1960, 2024)
    base = f"{_ascii_slug(authors[0].split(' ', 1)[1])}{year}"
    entry_id, suffix = base, 1
    while entry_id in used_ids:
        suffix += 1
        entry_id = f"{base}-{suffix}"
    used_ids.add(entry_id)
    title = rng.choice(_TITLE_FORMS).format(
        adj=rng.choice(_ADJECTIVES), noun=rng.choice(_NOUNS), topic=rng.choice(_TOPICS)
    )
    entry: dict[str, Any] = {"id": entry_id, "type": kind, "title": title, "authors": authors, "year": year}
    if rng.random() < knobs.venue_chance:
        entry["venue"] = rng.choice(_VENUES[kind])
    if kind != "book" and rng.random() < knobs.pages_chance:
        start = rng.randint(1, 900)
        entry["pages"] = (start, start + rng.randint(2, 30))
    if rng.random() < knobs.doi_chance:
        entry["doi"] = f"10.{rng.randint(1000, 99999)}/{rng.choice(_DOI_TAGS)}.{year}.{rng.randint(1, 999):03d}"
    return entry


def _bib_prompt(entries: list[dict[str, Any]]) -> str:
    count = "1 entry" if len(entries) == 1 else f"{len(entries)} entries, in this order"
    lines = [f"Write this bibliography as XML. It has {count}."]
    for number, entry in enumerate(entries, 1):
        facts = [f'Entry {number}: id "{entry["id"]}", type {entry["type"]}.',
                 f'Title: "{entry["title"]}".',
                 f'Authors: {"; ".join(entry["authors"])}.',
                 f'Year: {entry["year"]}.']
        if "venue" in entry:
            facts.append(f'Venue: "{entry["venue"]}".')
        if "pages" in entry:
            facts.append(f"Pages {entry['pages'][0]} to {entry['pages'][1]}.")
        if "doi" in entry:
            facts.append(f"DOI: {entry['doi']}.")
        lines.append(" ".join(facts))
    return "\n".join(lines)


def _bib_xml(entries: list[dict[str, Any]]) -> str:
    root = etree.Element("bibliography")
    for entry in entries:
        node = etree.SubElement(root, "entry", id=entry["id"], type=entry["type"])
        _text(node, "title", entry["title"])
        authors = etree.SubElement(node, "authors")
        for author in entry["authors"]:
            _text(authors, "author", author)
        _text(node, "year", str(entry["year"]))
        if "venue" in entry:
            _text(node, "venue", entry["venue"])
        if "pages" in entry:
            etree.SubElement(node, "pages", start=str(entry["pages"][0]), end=str(entry["pages"][1]))
        if "doi" in entry:
            _text(node, "doi", entry["doi"])
    return _serialize(root)


def _bibliography(rng: random.Random, knobs: Knobs) -> tuple[str, str, str]:
    used: set[str] = set()
    entries = [_bib_entry(rng, used, knobs) for _ in range(rng.randint(*knobs.entries))]
    return "bibliography", _bib_prompt(entries), _bib_xml(entries)


# -- purchase order ---------------------------------------------------------------------------------
def _order(rng: random.Random, knobs: Knobs) -> dict[str, Any]:
    order_date = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 2000))
    if rng.random() < 0.5:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        buyer, mailbox = f"{first} {last}", f"{_ascii_slug(first)}.{_ascii_slug(last)}"
        domain = "example.com"
    else:
        buyer, mailbox = rng.choice(_COMPANIES), "orders"
        domain = f"{_ascii_slug(buyer)}.example"
    city, country = rng.choice(_CITIES)
    skus: set[str] = set()
    items = []
    for _ in range(rng.randint(*knobs.items)):
        sku = f"{''.join(rng.choices('ABCDEFGHJKLMNPRSTUVWXYZ', k=3))}-{rng.randint(0, 9999):04d}"
        if sku in skus:
            continue
        skus.add(sku)
        price = Decimal(rng.randint(50, 50_000)) / 100
        items.append({"sku": sku, "name": rng.choice(_PRODUCTS), "quantity": rng.randint(1, 25),
                      "price": f"{price:.2f}"})
    total = sum(Decimal(item["price"]) * item["quantity"] for item in items)
    return {
        "id": f"PO-{rng.randint(10000, 99999)}",
        "order_date": order_date.isoformat(),
        "ship_date": (order_date + dt.timedelta(days=rng.randint(0, 21))).isoformat(),
        "currency": rng.choice(_CURRENCIES),
        "buyer": buyer,
        "email": f"{mailbox}@{domain}" if rng.random() < knobs.email_chance else None,
        "street": f"{rng.randint(1, 999)} {rng.choice(_STREETS)} {rng.choice(_STREET_KINDS)}",
        "city": city,
        "postal_code": f"{rng.randint(1000, 99999):05d}",
        "country": country,
        "items": items,
        "total": f"{total:.2f}",
    }


def _order_prompt(order: dict[str, Any]) -> str:
    buyer = order["buyer"] + (f" (email {order['email']})" if order["email"] else "")
    lines = [
        "Write this purchase order as XML.",
        f"Order {order['id']}, placed on {order['order_date']}, to ship on {order['ship_date']}, "
        f"currency {order['currency']}.",
        f"Buyer: {buyer}.",
        f"Ship to: {order['street']}, {order['city']}, postal code {order['postal_code']}, "
        f"country {order['country']}.",
        "Line items, in this order:",
    ]
    for number, item in enumerate(order["items"], 1):
        lines.append(f"{number}. SKU {item['sku']}: {item['name']}, quantity {item['quantity']}, "
                     f"unit price {item['price']}.")
    lines.append("The total is the sum of quantity x unit price over all items, with two decimals.")
    return "\n".join(lines)


def _order_xml(order: dict[str, Any]) -> str:
    root = etree.Element("purchaseOrder", orderId=order["id"], orderDate=order["order_date"],
                         shipDate=order["ship_date"], currency=order["currency"])
    buyer = etree.SubElement(root, "buyer")
    _text(buyer, "name", order["buyer"])
    if order["email"]:
        _text(buyer, "email", order["email"])
    ship_to = etree.SubElement(root, "shipTo")
    for tag, key in (("street", "street"), ("city", "city"), ("postalCode", "postal_code"),
                     ("country", "country")):
        _text(ship_to, tag, order[key])
    items = etree.SubElement(root, "items")
    for item in order["items"]:
        node = etree.SubElement(items, "item", sku=item["sku"])
        _text(node, "productName", item["name"])
        _text(node, "quantity", str(item["quantity"]))
        _text(node, "unitPrice", item["price"])
    _text(root, "total", order["total"])
    return _serialize(root)


def _purchase_order(rng: random.Random, knobs: Knobs) -> tuple[str, str, str]:
    order = _order(rng, knobs)
    return "purchase-order", _order_prompt(order), _order_xml(order)


# -- outline (only above the default difficulty) ------------------------------------------------------
OUTLINE_XSD = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">
  <xs:element name="outline">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="section" type="sectionType" maxOccurs="unbounded"/>
      </xs:sequence>
      <xs:attribute name="title" type="xs:string" use="required"/>
    </xs:complexType>
  </xs:element>
  <xs:complexType name="sectionType">
    <xs:sequence>
      <xs:element name="section" type="sectionType" minOccurs="0" maxOccurs="unbounded"/>
    </xs:sequence>
    <xs:attribute name="number" use="required">
      <xs:simpleType>
        <xs:restriction base="xs:string">
          <xs:pattern value="[1-9][0-9]*([.][1-9][0-9]*)*"/>
        </xs:restriction>
      </xs:simpleType>
    </xs:attribute>
    <xs:attribute name="heading" use="required">
      <xs:simpleType>
        <xs:restriction base="xs:string">
          <xs:minLength value="1"/>
        </xs:restriction>
      </xs:simpleType>
    </xs:attribute>
  </xs:complexType>
</xs:schema>
"""
"""XSD of an outline: ``<outline title>`` holding ``<section number heading>`` nested to any depth."""

Section = tuple[str, str, list[Any]]
"""An outline section: number (``1.2``), heading, sub-sections."""


def _sections(rng: random.Random, prefix: str, levels: int, reach: bool) -> list[Section]:
    """Sections under ``prefix``, at most ``levels`` deep; when ``reach``, one branch is that deep."""
    count = rng.randint(2, 3) if not prefix else rng.randint(1, 3)
    deep = rng.randrange(count) if reach else -1
    out: list[Section] = []
    for index in range(count):
        number = f"{prefix}{index + 1}"
        children: list[Section] = []
        if levels > 1 and (index == deep or rng.random() < 0.3):
            children = _sections(rng, f"{number}.", levels - 1, index == deep)
        out.append((number, rng.choice(_HEADINGS), children))
    return out


def _flatten(sections: list[Section]) -> list[tuple[str, str]]:
    """``(number, heading)`` in document order."""
    out: list[tuple[str, str]] = []
    stack = list(reversed(sections))
    while stack:
        number, heading, children = stack.pop()
        out.append((number, heading))
        stack.extend(reversed(children))
    return out


def _outline_xml(title: str, sections: list[Section]) -> str:
    root = etree.Element("outline", title=title)
    stack = [(root, section) for section in reversed(sections)]
    while stack:
        parent, (number, heading, children) = stack.pop()
        node = etree.SubElement(parent, "section", number=number, heading=heading)
        stack.extend((node, child) for child in reversed(children))
    return _serialize(root)


def _outline(rng: random.Random, knobs: Knobs) -> tuple[str, str, str]:
    title = rng.choice(_TITLE_FORMS).format(
        adj=rng.choice(_ADJECTIVES), noun=rng.choice(_NOUNS), topic=rng.choice(_TOPICS)
    )
    deepest = max(3, knobs.outline_depth)
    sections = _sections(rng, "", rng.randint(max(3, deepest - 1), deepest), True)
    lines = [f'Write the outline of the document "{title}" as XML. Its sections, in order '
             "(a number's dots show how deep the section is nested):"]
    lines += [f"{number} {heading}" for number, heading in _flatten(sections)]
    return OUTLINE_XSD, "\n".join(lines), _outline_xml(title, sections)


def _record(rng: random.Random, knobs: Knobs = Knobs()) -> dict[str, str]:
    roll = rng.random()
    if roll < knobs.outline_share:
        make = _outline
    else:  # at the default (no outlines) this is the original 50/50 test ``roll < 0.5``
        make = _bibliography if roll < knobs.outline_share + (1 - knobs.outline_share) / 2 else _purchase_order
    xsd, prompt, reference = make(rng, knobs)
    return {"prompt": prompt, "xsd": xsd, "reference": reference}


def generate(split: str, size: int, seed: int, difficulty: float | None = None) -> list[dict[str, str]]:
    """``size`` records ``{"prompt", "xsd", "reference"}`` for ``split``, seeded and deterministic.

    ``difficulty`` in [0, 1] (``None``: the default, 0.5) sets :class:`Knobs`.
    """
    value = DEFAULT_DIFFICULTY if difficulty is None else check_difficulty(difficulty)
    return generate_split("xml-records", split, size, seed, partial(_record, knobs=knobs_for(value)))
