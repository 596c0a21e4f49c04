"""Seeded generator of json-recipes records from the vocabulary in :mod:`.recipe_data`."""

from __future__ import annotations

import math
import random
from typing import Any

from .recipe_data import FAMILIES, PROMPT_TEMPLATES, Family, Ingredient
from rlstruct.splits import generate_split

MAX_SERVINGS = 8
"""Synthetic recipes serve 1 to this many people."""


def _number(value: float) -> int | float:
    """``2.0`` -> ``2``; other values rounded to 2 decimals."""
    value = round(value, 2)
    return int(value) if value == int(value) else value


def amount(ingredient: Ingredient, servings: int) -> tuple[int | float, str]:
    """A sensible (quantity, unit) for ``ingredient`` at ``servings`` (grams above 1 kg become kg)."""
    quantity = ingredient.per_serving * (servings if ingredient.scales else 1)
    unit = ingredient.unit
    if unit in ("piece", "clove"):
        return max(1, math.ceil(quantity - 1e-9)), unit
    if unit in ("tsp", "tbsp", "cup"):
        return _number(max(0.5, round(quantity * 2) / 2)), unit
    if unit in ("g", "ml"):
        step = 5 if quantity < 100 else 10
        grams = max(step, round(quantity / step) * step)
        if grams >= 1000:
            return _number(grams / 1000), "kg" if unit == "g" else "l"
        return int(grams), unit
    return _number(quantity), unit


def join_names(names: list[str]) -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def make_recipe(rng: random.Random) -> dict[str, Any]:
    """One record ``{"prompt", "reference"}`` drawn with ``rng``."""
    family: Family = rng.choice(FAMILIES)
    main = rng.choice(family.mains)
    taken = {main.name, *(b.name for b in family.base)}
    pool = [extra for extra in family.extras if extra.name not in taken]
    extras = rng.sample(pool, rng.randint(1, min(3, len(pool))))
    servings = rng.randint(1, MAX_SERVINGS)
    prep = rng.choice(family.prep_minutes)
    cook = rng.choice(family.cook_minutes)
    dish = family.name_pattern.format(
        adjective=rng.choice(family.adjectives), main=main.dish_word, extra=extras[0].name.title()
    )
    chosen = [main, *family.base, *extras]
    ingredients = []
    for ingredient in chosen:
        quantity, unit = amount(ingredient, servings)
        ingredients.append({"name": ingredient.name, "quantity": quantity, "unit": unit})
    fields = {
        "main": main.name,
        "extras": join_names([extra.name for extra in extras]),
        "cook": cook,
        "simmer": max(1, cook - 10),
    }
    steps = [template.format(**fields) for template in family.steps]
    reference = {
        "name": dish,
        "servings": servings,
        "prep_minutes": prep,
        "cook_minutes": cook,
        "ingredients": ingredients,
        "steps": steps,
    }
    listed = [ingredient.name for ingredient in chosen]
    rng.shuffle(listed)
    prompt = rng.choice(PROMPT_TEMPLATES).format(
        dish=dish,
        people="1 person" if servings == 1 else f"{servings} people",
        servings=servings,
        ingredients=join_names(listed),
    )
    return {"prompt": prompt, "reference": reference}


def synthetic_recipes(split: str, size: int, seed: int) -> list[dict[str, Any]]:
    """``size`` distinct records of ``split`` (train / validation / test), deterministic in ``seed``."""
    return generate_split("json-recipes", split, size, seed, make_recipe)
