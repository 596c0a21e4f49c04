"""Difficulty for the json-schema task's synthetic records (see docs/tasks/json-schema.md, "Difficulty").

Records are drawn from the built-in makers of :mod:`.examples`, then reshaped by
:class:`Knobs`:

- *enums and patterns* (below the default): each constraint keyword (``pattern``, ``format``,
  ``enum``, ``uniqueItems``, ``minLength``, ``minItems``, ``minimum``, ``exclusiveMinimum``) is
  dropped with chance :attr:`Knobs.loosen` (every one at difficulty 0), so the schema is easier
  to satisfy; a dropped ``enum`` of strings becomes ``"type": "string"``;
- *number of properties, enums and patterns* (above the default): extra properties constrained
  by an ``enum``, a ``pattern`` or a range (:data:`EXTRA_FIELDS`) are added, their values stated
  in the prompt;
- *schema depth* (above the default): the value is nested in one or two envelope objects, and a
  top-level array that gets extra properties first moves under ``"items"``; the prompt shows the
  nesting.

At the default difficulty (0.5, or ``None``) nothing is reshaped and no extra random draw is
made, so the records are exactly those of :func:`.examples.synthetic_schema_records`.
Every reshaped reference stays valid under its reshaped schema.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from rlstruct.curriculum import DEFAULT_DIFFICULTY, check_difficulty, int_range, level
from rlstruct.splits import generate_split

from . import examples

CONSTRAINT_KEYWORDS: tuple[str, ...] = (
    "pattern", "format", "enum", "uniqueItems", "minLength", "minItems", "minimum", "exclusiveMinimum",
)
"""The keywords loosening may drop."""
ENVELOPE_KEYS: tuple[str, ...] = ("data", "record", "payload", "body", "entry")
"""Keys of the envelope objects that add depth."""


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _letters(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXZ") for _ in range(count))


EXTRA_FIELDS: tuple[tuple[str, dict[str, Any], Callable[[random.Random], Any]], ...] = (
    ("priority", {"enum": ["low", "normal", "high", "urgent"]}, lambda rng: rng.choice(["low", "normal", "high", "urgent"])),
    ("status", {"enum": ["draft", "active", "archived"]}, lambda rng: rng.choice(["draft", "active", "archived"])),
    ("region", {"enum": ["emea", "apac", "amer"]}, lambda rng: rng.choice(["emea", "apac", "amer"])),
    ("ref_code", {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"}, lambda rng: f"{_letters(rng, 2)}-{rng.randint(100, 999)}"),
    ("colour", {"type": "string", "pattern": "^#[0-9a-f]{6}$"}, lambda rng: f"#{rng.randrange(16**6):06x}"),
    ("version", {"type": "string", "pattern": "^v[0-9]+\\.[0-9]+$"}, lambda rng: f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}"),
    ("rating", {"type": "integer", "minimum": 1, "maximum": 5}, lambda rng: rng.randint(1, 5)),
)
"""Extra properties: (name, schema, value drawer). Names never clash with the built-in schemas'."""


@dataclass(frozen=True)
class Knobs:
    """What difficulty sets (the defaults reshape nothing: the original records)."""

    loosen: float = 0.0
    """Chance that each constraint keyword is dropped (1 at difficulty 0, 0 from the default up)."""
    extra_fields: tuple[int, int] = (0, 0)
    """Inclusive range of extra constrained properties (hard (2, 4))."""
    envelopes: tuple[int, int] = (0, 0)
    """Inclusive range of envelope objects around the value (hard (1, 2))."""


def knobs_for(difficulty: float) -> Knobs:
    """The :class:`Knobs` at ``difficulty`` in [0, 1] (reshaping nothing at 0.5)."""
    return Knobs(
        loosen=level(difficulty, 1.0, 0.0, 0.0),
        extra_fields=int_range(difficulty, (0, 0), (0, 0), (2, 4)),
        envelopes=int_range(difficulty, (0, 0), (0, 0), (1, 2)),
    )


def _subschemas(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """``schema`` and every schema nested in it (properties, items, $defs), in document order."""
    out, stack = [], [schema]
    while stack:
        node = stack.pop()
        out.append(node)
        children: list[Any] = []
        for key in ("properties", "$defs"):
            if isinstance(node.get(key), dict):
                children.extend(node[key].values())
        if isinstance(node.get("items"), dict):
            children.append(node["items"])
        stack.extend(child for child in reversed(children) if isinstance(child, dict))
    return out


def _loosen(schema: dict[str, Any], chance: float, rng: random.Random) -> None:
    """Drop each constraint keyword of ``schema`` (in place) with probability ``chance``."""
    for node in _subschemas(schema):
        for keyword in CONSTRAINT_KEYWORDS:
            if keyword in node and rng.random() < chance:
                values = node.pop(keyword)
                if keyword == "enum" and "type" not in node and all(isinstance(v, str) for v in values):
                    node["type"] = "string"


def _envelope(record: dict[str, Any], key: str) -> None:
    """Move the record's value under ``key`` (in place); ``$defs`` and ``title`` stay at the root."""
    inner = record["schema"]
    outer: dict[str, Any] = {}
    for kept in ("title", "$defs"):  # local $refs point at the root's $defs
        if kept in inner:
            outer[kept] = inner.pop(kept)
    outer.update(type="object", additionalProperties=False, required=[key], properties={key: inner})
    record["schema"] = outer
    record["reference"] = {key: record["reference"]}


def _reshape(record: dict[str, Any], knobs: Knobs, rng: random.Random) -> dict[str, Any]:
    record = copy.deepcopy(record)  # reshaped in place below; never touch a maker's shared objects
    schema, notes = record["schema"], []
    if knobs.loosen > 0:
        _loosen(schema, knobs.loosen, rng)
    count = rng.randint(*knobs.extra_fields) if knobs.extra_fields != (0, 0) else 0
    if count:
        if schema.get("type") != "object":
            _envelope(record, "items")
            notes.append('Put the list under "items".')
            schema = record["schema"]
        settings = []
        for name, field_schema, draw in rng.sample(EXTRA_FIELDS, count):
            value = draw(rng)
            schema.setdefault("properties", {})[name] = copy.deepcopy(field_schema)
            schema.setdefault("required", []).append(name)
            record["reference"][name] = value
            settings.append(f'"{name}" to "{value}"' if isinstance(value, str) else f'"{name}" to {value}')
        notes.append("Also set " + _join(settings) + ".")
    levels = rng.randint(*knobs.envelopes) if knobs.envelopes != (0, 0) else 0
    if levels:
        keys = rng.sample(ENVELOPE_KEYS, levels)
        for key in reversed(keys):
            _envelope(record, key)
        path = "".join(f'{{"{key}": ' for key in keys) + "..." + "}" * levels
        notes.append(f"Return it nested as {path}.")
    if notes:
        record["prompt"] = record["prompt"] + " " + " ".join(notes)
    return record


def make_record(rng: random.Random, knobs: Knobs = Knobs()) -> dict[str, Any]:
    """One record from a built-in maker, reshaped by ``knobs`` (no extra draw at the defaults)."""
    record = examples.make_record(rng)
    return record if knobs == Knobs() else _reshape(record, knobs, rng)


def synthetic_schema_records(split: str, size: int, seed: int, difficulty: float | None = None) -> list[dict[str, Any]]:
    """``size`` distinct records of ``split`` at ``difficulty`` (``None``: the default, 0.5)."""
    value = DEFAULT_DIFFICULTY if difficulty is None else check_difficulty(difficulty)
    if value == DEFAULT_DIFFICULTY:  # exactly the original generator, whatever it becomes
        return examples.synthetic_schema_records(split, size, seed)
    return generate_split("json-schema", split, size, seed, partial(make_record, knobs=knobs_for(value)))
