"""Built-in schemas and seeded records for the json-schema task's synthetic data.

Four small schemas (contact card, product listing, event, shopping list) exercise objects,
nested objects, a top-level array, ``$ref``, ``enum``, ``pattern``, ``format`` (email, date,
date-time, uri) and ``uniqueItems``. Each generated prompt states every value of its reference,
so content is checkable.
"""

from __future__ import annotations

import copy
import datetime
import json
import random
from pathlib import Path
from typing import Any, Callable

from rlstruct.splits import generate_split

# The schemas and the words records are made of are data, next to this module (read once, at import):
# builtin_schemas.json and vocabulary.json. Their order is part of the generator.
_HERE = Path(__file__).parent
BUILTIN_SCHEMAS: dict[str, dict[str, Any]] = json.loads((_HERE / "builtin_schemas.json").read_text(encoding="utf-8"))
"""The schemas synthetic records use, by short name."""

CONTACT_SCHEMA: dict[str, Any] = BUILTIN_SCHEMAS["contact"]
PRODUCT_SCHEMA: dict[str, Any] = BUILTIN_SCHEMAS["product"]
EVENT_SCHEMA: dict[str, Any] = BUILTIN_SCHEMAS["event"]
SHOPPING_SCHEMA: dict[str, Any] = BUILTIN_SCHEMAS["shopping"]

_WORDS = json.loads((_HERE / "vocabulary.json").read_text(encoding="utf-8"))
FIRST: tuple[str, ...] = tuple(_WORDS["first_names"])
LAST: tuple[str, ...] = tuple(_WORDS["last_names"])
DOMAINS: tuple[str, ...] = tuple(_WORDS["email_domains"])
TAGS: tuple[str, ...] = tuple(_WORDS["contact_tags"])
PRODUCTS: tuple[str, ...] = tuple(_WORDS["products"])
CATEGORIES: tuple[str, ...] = tuple(_WORDS["product_categories"])
EVENTS: tuple[str, ...] = tuple(_WORDS["events"])
PLACES: tuple[tuple[str, str], ...] = tuple((city, country) for city, country in _WORDS["places"])
GROCERIES: tuple[str, ...] = tuple(_WORDS["groceries"])


def _person(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return f"{first} {last}", f"{first.lower()}.{last.lower()}@{rng.choice(DOMAINS)}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def make_contact(rng: random.Random) -> dict[str, Any]:
    """A contact-card record."""
    name, email = _person(rng)
    phone = f"+{rng.choice((1, 34, 44, 49, 81, 91))} {rng.randint(200, 999)} {rng.randint(100, 999)} {rng.randint(100, 999)}"
    birthday = (datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randint(0, 20000))).isoformat()
    tags = rng.sample(TAGS, rng.randint(1, 3))
    reference = {"name": name, "email": email, "phone": phone, "birthday": birthday, "tags": tags}
    prompt = rng.choice((
        "Make a contact card for {name}: email {email}, phone {phone}, born {birthday}, tagged {tags}.",
        "Create a contact entry. Name: {name}. Email: {email}. Phone: {phone}. Birthday: {birthday}. Tags: {tags}.",
    )).format(**{**reference, "tags": _join(tags)})
    return {"prompt": prompt, "schema": copy.deepcopy(CONTACT_SCHEMA), "reference": reference}


def make_product(rng: random.Random) -> dict[str, Any]:
    """A product-listing record."""
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXZ") for _ in range(3))
    sku = f"{letters}-{rng.randint(1000, 9999)}"
    price = rng.randint(199, 19999) / 100
    in_stock = rng.random() < 0.7
    reference = {
        "sku": sku,
        "title": rng.choice(PRODUCTS),
        "price": price,
        "currency": rng.choice(("EUR", "USD", "GBP", "JPY")),
        "in_stock": in_stock,
        "categories": rng.sample(CATEGORIES, rng.randint(1, 3)),
        "url": f"https://shop.example.com/p/{sku.lower()}",
    }
    prompt = (
        f'List the product {sku}, "{reference["title"]}", priced {price:.2f} {reference["currency"]}, '
        f'{"in stock" if in_stock else "out of stock"}, in the categories {_join(reference["categories"])}, '
        f'at {reference["url"]}.'
    )
    return {"prompt": prompt, "schema": copy.deepcopy(PRODUCT_SCHEMA), "reference": reference}


def make_event(rng: random.Random) -> dict[str, Any]:
    """A calendar-event record."""
    day = datetime.date(2025, 1, 1) + datetime.timedelta(days=rng.randint(0, 729))
    start = datetime.datetime(day.year, day.month, day.day, rng.randint(8, 19), rng.choice((0, 15, 30, 45)))
    end = start + datetime.timedelta(minutes=rng.choice((30, 60, 90, 120, 180)))
    city, country = rng.choice(PLACES)
    attendees: list[str] = []
    for _ in range(rng.randint(1, 4)):
        email = _person(rng)[1]
        if email not in attendees:
            attendees.append(email)
    reference = {
        "title": rng.choice(EVENTS),
        "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "location": {"city": city, "country": country},
        "attendees": attendees,
    }
    prompt = (
        f'Schedule "{reference["title"]}" from {reference["start"]} to {reference["end"]} in {city}, '
        f"{country}, with {_join(attendees)}."
    )
    return {"prompt": prompt, "schema": copy.deepcopy(EVENT_SCHEMA), "reference": reference}


def make_shopping(rng: random.Random) -> dict[str, Any]:
    """A shopping-list record (a top-level array)."""
    items = rng.sample(GROCERIES, rng.randint(2, 5))
    reference = [{"item": item, "quantity": rng.randint(1, 6)} for item in items]
    prompt = "Turn this into a shopping list: " + ", ".join(f'{e["quantity"]} x {e["item"]}' for e in reference) + "."
    return {"prompt": prompt, "schema": copy.deepcopy(SHOPPING_SCHEMA), "reference": reference}


MAKERS: tuple[Callable[[random.Random], dict[str, Any]], ...] = (make_contact, make_product, make_event, make_shopping)


def make_record(rng: random.Random) -> dict[str, Any]:
    """One record from a randomly chosen built-in schema."""
    return rng.choice(MAKERS)(rng)


def synthetic_schema_records(split: str, size: int, seed: int) -> list[dict[str, Any]]:
    """``size`` distinct records of ``split``, deterministic in ``seed``."""
    return generate_split("json-schema", split, size, seed, make_record)
