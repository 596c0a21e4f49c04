"""Seeded synthetic records for ``xml-records``: bibliographies and purchase orders.

Each record's prompt states every fact the XML must hold (a purchase order's total is stated as a
rule, sum of quantity x unit price, for the model to compute); the reference is built with lxml
and is valid under the built-in XSD. Records alternate at random between the two schemas.

Splits are disjoint by construction: a prompt belongs to exactly one split, chosen by a hash of
its text (the shared scheme of :mod:`rlstruct.splits`); the generator draws candidates and keeps
those of the asked split.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from decimal import Decimal
from typing import Any

from lxml import etree
from rlstruct.splits import generate_split

_FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Leslie",
          "Margaret", "Niklaus", "Radia", "Tim", "Shafi", "Judea", "Yoshua", "Andrew", "Hedy",
          "Katherine", "Claude", "Sophie", "Mateo", "Amara", "Kenji", "Priya", "Lars", "Inès",
          "Omar", "Zofia", "Chloé"]
_LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "McCarthy",
         "Lamport", "Hamilton", "Wirth", "Perlman", "Berners-Lee", "Goldwasser", "Pearl",
         "Bengio", "Ng", "Lamarr", "Johnson", "Shannon", "Wilson", "García", "Okafor", "Tanaka",
         "Raman", "Nielsen", "Duarte", "Haddad", "Kowalska", "O'Neil"]
_ADJECTIVES = ["Scalable", "Robust", "Efficient", "Probabilistic", "Incremental", "Verified",
               "Adaptive", "Distributed", "Sparse", "Interpretable", "Lazy", "Parallel"]
_NOUNS = ["Algorithms", "Methods", "Models", "Protocols", "Abstractions", "Representations",
          "Heuristics", "Architectures", "Proofs", "Benchmarks"]
_TOPICS = ["Graph Search", "Type Inference", "Language Modelling", "Consensus", "Image Retrieval",
           "Program Synthesis", "Query Optimisation", "Protein Folding", "Speech Recognition",
           "Garbage Collection", "Theorem Proving", "Network Routing", "Compilers & Runtimes"]
_TITLE_FORMS = ["{adj} {noun} for {topic}", "On {adj} {noun} in {topic}",
                "{topic}: {adj} {noun}", "Towards {adj} {topic}"]
_VENUES = {
    "article": ["Journal of Machine Learning Research", "Communications of the ACM", "Nature",
                "ACM Computing Surveys", "IEEE Transactions on Software Engineering",
                "Journal of Functional Programming"],
    "inproceedings": ["Proceedings of NeurIPS", "Proceedings of ICML", "Proceedings of PLDI",
                      "Proceedings of SIGMOD", "Proceedings of ACL", "Proceedings of OSDI"],
    "book": ["MIT Press", "Cambridge University Press", "O'Reilly Media", "Springer",
             "Addison-Wesley", "John Wiley & Sons"],
}
_DOI_TAGS = ["jmlr", "cacm", "tse", "pldi", "acl", "nips", "csur", "osdi"]

_COMPANIES = ["Acme Corporation", "Globex Ltd", "Initech", "Umbrella Supplies", "Wayne & Sons",
              "Hooli", "Vandelay Imports", "Soylent Foods"]
_STREETS = ["Elm", "Oak", "Maple", "Station", "Harbour", "Mill", "Church", "Linden", "Canal"]
_STREET_KINDS = ["Street", "Road", "Avenue", "Lane", "Way"]
_CITIES = [("Springfield", "US"), ("Portland", "US"), ("Berlin", "DE"), ("Munich", "DE"),
           ("Lyon", "FR"), ("Paris", "FR"), ("Manchester", "GB"), ("Leeds", "GB"),
           ("Utrecht", "NL"), ("Porto", "PT"), ("Kraków", "PL"), ("Malmö", "SE")]
_PRODUCTS = ["USB-C cable", "Wireless mouse", "Mechanical keyboard", "27-inch monitor",
             "Laptop stand", "Webcam", "Desk lamp", "Noise-cancelling headphones",
             "Ergonomic chair", "Whiteboard markers (pack of 12)", "A4 paper ream",
             "Label printer", "Coffee beans 1 kg", "Cable ties <100 pcs>"]
_CURRENCIES = ["USD", "EUR", "GBP"]


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
def _bib_entry(rng: random.Random, used_ids: set[str]) -> dict[str, Any]:
    kind = rng.choice(sorted(_VENUES))
    authors = [f"{rng.choice(_FIRST)} {last}" for last in rng.sample(_LAST, rng.randint(1, 4))]
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
    if rng.random() < 0.85:
        entry["venue"] = rng.choice(_VENUES[kind])
    if kind != "book" and rng.random() < 0.8:
        start = rng.randint(1, 900)
        entry["pages"] = (start, start + rng.randint(2, 30))
    if rng.random() < 0.6:
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


def _bibliography(rng: random.Random) -> tuple[str, str, str]:
    used: set[str] = set()
    entries = [_bib_entry(rng, used) for _ in range(rng.randint(1, 3))]
    return "bibliography", _bib_prompt(entries), _bib_xml(entries)


# -- purchase order ---------------------------------------------------------------------------------
def _order(rng: random.Random) -> dict[str, Any]:
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
    for _ in range(rng.randint(1, 4)):
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
        "email": f"{mailbox}@{domain}" if rng.random() < 0.6 else None,
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


def _purchase_order(rng: random.Random) -> tuple[str, str, str]:
    order = _order(rng)
    return "purchase-order", _order_prompt(order), _order_xml(order)


def _record(rng: random.Random) -> dict[str, str]:
    xsd, prompt, reference = (_bibliography if rng.random() < 0.5 else _purchase_order)(rng)
    return {"prompt": prompt, "xsd": xsd, "reference": reference}


def generate(split: str, size: int, seed: int) -> list[dict[str, str]]:
    """``size`` records ``{"prompt", "xsd", "reference"}`` for ``split``, seeded and deterministic."""
    return generate_split("xml-records", split, size, seed, _record)
