"""Built-in vocabulary for synthetic json-recipes records: dish families, ingredients, method templates.

Each :class:`Family` is a kind of dish (soup, pasta, ...). A recipe takes one *main* ingredient,
all the family's *base* ingredients and one to three *extras*. Step templates name the base
ingredients literally and use ``{main}``, ``{extras}``, ``{cook}`` and ``{simmer}`` for the rest,
so every ingredient is mentioned by at least one step.

The tables themselves are data, in ``vocabulary.json`` next to this module (read once, at
import); this module gives them their types. Their order is part of the generator: reordering
an entry changes every seeded record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Ingredient:
    """One ingredient with a sensible unit and amount for a single serving."""

    name: str
    unit: str
    per_serving: float
    title: str = ""
    """How the ingredient reads in a dish name ("Chicken" for chicken breast); default: title case."""
    scales: bool = True
    """False for amounts that do not grow with servings (a pinch of salt)."""

    @property
    def dish_word(self) -> str:
        """The word(s) used for this ingredient in a dish name."""
        return self.title or self.name.title()


@dataclass(frozen=True)
class Family:
    """A kind of dish: its ingredient pools, name pattern, timings and method."""

    noun: str
    name_pattern: str
    """Format string with ``{adjective}``, ``{main}`` and ``{extra}`` (first extra) placeholders."""
    adjectives: tuple[str, ...]
    mains: tuple[Ingredient, ...]
    base: tuple[Ingredient, ...]
    extras: tuple[Ingredient, ...]
    prep_minutes: tuple[int, ...]
    cook_minutes: tuple[int, ...]
    steps: tuple[str, ...]


def _ingredient(raw: dict[str, Any]) -> Ingredient:
    return Ingredient(raw["name"], raw["unit"], raw["per_serving"], raw.get("title", ""), raw.get("scales", True))


def _family(raw: dict[str, Any]) -> Family:
    return Family(
        noun=raw["noun"],
        name_pattern=raw["name_pattern"],
        adjectives=tuple(raw["adjectives"]),
        mains=tuple(map(_ingredient, raw["mains"])),
        base=tuple(map(_ingredient, raw["base"])),
        extras=tuple(map(_ingredient, raw["extras"])),
        prep_minutes=tuple(raw["prep_minutes"]),
        cook_minutes=tuple(raw["cook_minutes"]),
        steps=tuple(raw["steps"]),
    )


_TABLES = json.loads(Path(__file__).with_name("vocabulary.json").read_text(encoding="utf-8"))

FAMILIES: tuple[Family, ...] = tuple(map(_family, _TABLES["families"]))
"""Every dish family the generator draws from."""

PROMPT_TEMPLATES: tuple[str, ...] = tuple(_TABLES["prompt_templates"])
"""How a synthetic prompt asks for a recipe (dish, servings and every ingredient are stated)."""
