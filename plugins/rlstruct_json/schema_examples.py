"""Built-in schemas and seeded records for the json-schema task's synthetic data.

Four small schemas (contact card, product listing, event, shopping list) exercise objects,
nested objects, a top-level array, ``$ref``, ``enum``, ``pattern``, ``format`` (email, date,
date-time, uri) and ``uniqueItems``. Each generated prompt states every value of its reference,
so content is checkable.
"""

from __future__ import annotations

import copy
import datetime
import random
from typing import Any, Callable

from rlstruct.splits import generate_split

CONTACT_SCHEMA: dict[str, Any] = {
    "title": "Contact card",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "email", "phone", "birthday", "tags"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "email": {"type": "string", "format": "email"},
        "phone": {"type": "string", "pattern": "^\\+[0-9][0-9 ]{6,18}[0-9]$"},
        "birthday": {"type": "string", "format": "date"},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True},
    },
}

PRODUCT_SCHEMA: dict[str, Any] = {
    "title": "Product listing",
    "type": "object",
    "additionalProperties": False,
    "required": ["sku", "title", "price", "currency", "in_stock", "categories", "url"],
    "properties": {
        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
        "title": {"type": "string", "minLength": 1},
        "price": {"type": "number", "exclusiveMinimum": 0},
        "currency": {"enum": ["EUR", "USD", "GBP", "JPY"]},
        "in_stock": {"type": "boolean"},
        "categories": {"type": "array", "minItems": 1, "items": {"type": "string"}, "uniqueItems": True},
        "url": {"type": "string", "format": "uri"},
    },
}

EVENT_SCHEMA: dict[str, Any] = {
    "title": "Calendar event",
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "start", "end", "location", "attendees"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "start": {"type": "string", "format": "date-time"},
        "end": {"type": "string", "format": "date-time"},
        "location": {
            "type": "object",
            "additionalProperties": False,
            "required": ["city", "country"],
            "properties": {"city": {"type": "string", "minLength": 1}, "country": {"type": "string", "minLength": 2}},
        },
        "attendees": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/email"}, "uniqueItems": True},
    },
    "$defs": {"email": {"type": "string", "format": "email"}},
}

SHOPPING_SCHEMA: dict[str, Any] = {
    "title": "Shopping list",
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["item", "quantity"],
        "properties": {"item": {"type": "string", "minLength": 1}, "quantity": {"type": "integer", "minimum": 1}},
    },
}

BUILTIN_SCHEMAS: dict[str, dict[str, Any]] = {
    "contact": CONTACT_SCHEMA,
    "product": PRODUCT_SCHEMA,
    "event": EVENT_SCHEMA,
    "shopping": SHOPPING_SCHEMA,
}
"""The schemas synthetic records use, by short name."""

FIRST = ("Maria", "James", "Aiko", "Lukas", "Fatima", "Chen", "Olivia", "Mateo", "Priya", "Noah",
         "Elena", "Kwame", "Sofia", "Ivan", "Amara", "Lucas")
LAST = ("Lopez", "Smith", "Tanaka", "Weber", "Haddad", "Wang", "Brown", "Garcia", "Sharma", "Jensen",
        "Rossi", "Mensah", "Novak", "Petrov", "Okafor", "Silva")
DOMAINS = ("example.com", "example.org", "mail.example.net")
TAGS = ("friend", "work", "family", "gym", "school", "neighbour", "club")
PRODUCTS = ("Stainless Steel Kettle", "Wireless Mouse", "Cotton T-Shirt", "Ceramic Mug", "Yoga Mat",
            "Desk Lamp", "Running Shoes", "Canvas Backpack", "Water Bottle", "Bluetooth Speaker")
CATEGORIES = ("kitchen", "electronics", "clothing", "sports", "home", "office", "outdoor", "gifts")
EVENTS = ("Team Meeting", "Product Launch", "Book Club", "Quarterly Review", "Yoga Class",
          "Board Game Night", "Tech Talk", "Charity Run")
PLACES = (("Lisbon", "Portugal"), ("Nairobi", "Kenya"), ("Osaka", "Japan"), ("Toronto", "Canada"),
          ("Berlin", "Germany"), ("Lima", "Peru"), ("Pune", "India"), ("Oslo", "Norway"))
GROCERIES = ("apples", "bread", "milk", "eggs", "rice", "bananas", "coffee", "cheese", "tomatoes",
             "pasta", "yogurt", "onions")


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
