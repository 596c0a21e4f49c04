"""Seeded generator of json-recipes records from the vocabulary in :mod:`.vocabulary`.

Difficulty (see docs/tasks/json-recipes.md, "Difficulty") moves two knobs:

- *ingredients*: how many extras a recipe takes besides its main and base ingredients
  (:data:`EXTRAS_EASY`, :data:`EXTRAS_DEFAULT`, :data:`EXTRAS_HARD`, capped by the family's pool);
- *steps*: above the default, each extra may get its own "Prepare the ..." step at the start of
  the method (chance :func:`prep_step_chance`), which the prompt then asks for.

At the default difficulty (0.5, or ``None``) the records are exactly those of the original
generator: the same random draws in the same order.
"""

from __future__ import annotations

import math
import random
from functools import partial
from typing import Any

from rlstruct.curriculum import DEFAULT_DIFFICULTY, check_difficulty, int_range, level
from rlstruct.splits import generate_split

from .vocabulary import FAMILIES, PROMPT_TEMPLATES, Family, Ingredient

MAX_SERVINGS = 8
"""Synthetic recipes serve 1 to this many people."""
EXTRAS_EASY = (1, 1)
"""Range of the number of extras at difficulty 0."""
EXTRAS_DEFAULT = (1, 3)
"""Range of the number of extras at the default difficulty (the original generator's)."""
EXTRAS_HARD = (3, 6)
"""Range of the number of extras at difficulty 1."""


def prep_step_chance(difficulty: float) -> float:
    """Chance that an extra gets its own preparation step: 0 up to the default, 1 at difficulty 1."""
    return level(difficulty, 0.0, 0.0, 1.0)


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


def make_recipe(rng: random.Random, difficulty: float = DEFAULT_DIFFICULTY) -> dict[str, Any]:
    """One record ``{"prompt", "reference"}`` drawn with ``rng`` at ``difficulty`` (see module doc)."""
    family: Family = rng.choice(FAMILIES)
    main = rng.choice(family.mains)
    taken = {main.name, *(b.name for b in family.base)}
    pool = [extra for extra in family.extras if extra.name not in taken]
    low, high = int_range(difficulty, EXTRAS_EASY, EXTRAS_DEFAULT, EXTRAS_HARD)
    high = min(high, len(pool))
    extras = rng.sample(pool, rng.randint(min(low, high), high))
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
    chance = prep_step_chance(difficulty)
    # drawn only above the default, so the default's random stream is the original one
    prepared = [extra.name for extra in extras if chance > 0 and rng.random() < chance]
    steps[:0] = [f"Prepare the {name}." for name in prepared]
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
    if prepared:
        prompt += f' Begin the method with one "Prepare the ..." step for each of: {join_names(prepared)}.'
    return {"prompt": prompt, "reference": reference}


def synthetic_recipes(split: str, size: int, seed: int, difficulty: float | None = None) -> list[dict[str, Any]]:
    """``size`` distinct records of ``split`` (train / validation / test), deterministic in ``seed``.

    ``difficulty`` in [0, 1] (``None``: the default, 0.5) moves the knobs in the module docstring.
    """
    value = DEFAULT_DIFFICULTY if difficulty is None else check_difficulty(difficulty)
    return generate_split("json-recipes", split, size, seed, partial(make_recipe, difficulty=value))
