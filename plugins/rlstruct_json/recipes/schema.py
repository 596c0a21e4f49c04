"""The recipe JSON Schema shipped with the plugin (``recipe.schema.json``) and facts derived from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("recipe.schema.json")
"""Location of the Draft 2020-12 schema a json-recipes completion must match."""

RECIPE_SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
"""The parsed schema (treat as read-only)."""

RECIPE_KEYS: tuple[str, ...] = tuple(RECIPE_SCHEMA["properties"])
"""Top-level keys in schema order: name, servings, prep_minutes, cook_minutes, ingredients, steps."""

INGREDIENT_KEYS: tuple[str, ...] = tuple(RECIPE_SCHEMA["$defs"]["ingredient"]["properties"])
"""Keys of one ingredient in schema order: name, quantity, unit."""

UNITS: tuple[str, ...] = tuple(RECIPE_SCHEMA["$defs"]["ingredient"]["properties"]["unit"]["enum"])
"""The allowed units (g, kg, ml, l, tsp, tbsp, cup, piece, pinch, clove)."""


def schema_summary() -> str:
    """The schema in one compact line, for the system prompt."""
    units = "|".join(UNITS)
    return (
        '{"name": string, "servings": integer >= 1, "prep_minutes": integer >= 0, '
        '"cook_minutes": integer >= 0, "ingredients": [{"name": string, "quantity": number > 0, '
        f'"unit": "{units}"}}, ...] (at least 1), "steps": [string, ...] (at least 1, in order)}}'
    )
