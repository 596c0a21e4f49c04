"""Content and validity scores of a parsed recipe. Every function accepts any parsed JSON shape.

Content (agreement with the reference recipe) is the weighted mean of :data:`CONTENT_WEIGHTS`:

* ``ingredients`` (0.35): F1 of the ingredient-name sets, names normalised by
  :func:`.text_match.name_key` (case, spacing, plurals);
* ``steps`` (0.25): share of reference steps *covered* by some single generated step: it holds
  at least :data:`STEP_COVERAGE` of the reference step's content words, and those make up at
  least :data:`STEP_FOCUS` of its own content words (one catch-all step covers nothing);
* ``name`` (0.15): F1 of the content words of the dish names;
* ``servings`` (0.15): 1 if ``servings`` equals the reference's, else 0;
* ``quantities`` (0.10): per reference ingredient, 0.5 for the same unit plus 0.5 for a quantity
  within 10 % of the reference's, when the output has that ingredient (0 when it does not).

Validity (semantic plausibility, no reference needed) is the share of :data:`VALIDITY_CHECKS`
that pass; list checks fail when the list is missing or empty.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from rlstruct import f1

from .schema import UNITS
from .text_match import content_words, head_noun, name_key, words

CONTENT_WEIGHTS: Mapping[str, float] = {
    "ingredients": 0.35,
    "steps": 0.25,
    "name": 0.15,
    "servings": 0.15,
    "quantities": 0.10,
}
"""Weights of the content parts (they sum to 1)."""

STEP_COVERAGE = 0.6
"""Share of a reference step's content words a generated step must contain to cover it."""
STEP_FOCUS = 0.3
"""Share of a generated step's content words that must come from the reference step it covers."""
QUANTITY_TOLERANCE = 0.10
"""Relative difference under which two quantities count as the same."""
MAX_MINUTES = 24 * 60
"""prep_minutes + cook_minutes must stay below this (one day)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _list(value: Any, key: str) -> list[Any]:
    if isinstance(value, dict) and isinstance(value.get(key), list):
        return value[key]
    return []


def _ingredients(recipe: Any) -> dict[str, dict[str, Any]]:
    """Normalised ingredient name -> first ingredient object with that name."""
    found: dict[str, dict[str, Any]] = {}
    for item in _list(recipe, "ingredients"):
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            key = name_key(item["name"])
            if key and key not in found:
                found[key] = item
    return found


def _steps(recipe: Any) -> list[str]:
    return [step for step in _list(recipe, "steps") if isinstance(step, str)]


# -- content ----------------------------------------------------------------------------------------
def ingredient_f1(reference: Mapping[str, Any], recipe: Any) -> float:
    """F1 between the normalised ingredient-name sets."""
    return f1(set(_ingredients(recipe)), set(_ingredients(reference)))


def step_coverage(reference: Mapping[str, Any], recipe: Any) -> float:
    """Share of reference steps covered by one generated step (:data:`STEP_COVERAGE`, :data:`STEP_FOCUS`)."""
    wanted = [words_ for words_ in (content_words(step) for step in _steps(reference)) if words_]
    if not wanted:
        return 1.0
    generated = {content_words(step) for step in _steps(recipe)}
    generated.discard(frozenset())
    covered = 0
    for target in wanted:
        need = STEP_COVERAGE * len(target)
        for candidate in generated:
            shared = len(target & candidate)
            if shared >= need and shared >= STEP_FOCUS * len(candidate):
                covered += 1
                break
    return covered / len(wanted)


def name_similarity(reference: Mapping[str, Any], recipe: Any) -> float:
    """F1 of the dish names' content words (0 when the output has no string name)."""
    name = recipe.get("name") if isinstance(recipe, dict) else None
    if not isinstance(name, str):
        return 0.0
    return f1(content_words(name), content_words(reference.get("name", "")))


def servings_match(reference: Mapping[str, Any], recipe: Any) -> float:
    """1.0 when ``servings`` equals the reference's (as a number, not a boolean or string)."""
    servings = recipe.get("servings") if isinstance(recipe, dict) else None
    return 1.0 if _is_number(servings) and servings == reference.get("servings") else 0.0


def quantity_agreement(reference: Mapping[str, Any], recipe: Any) -> float:
    """Mean over reference ingredients of 0.5·(same unit) + 0.5·(quantity within tolerance)."""
    wanted = _ingredients(reference)
    if not wanted:
        return 1.0
    have = _ingredients(recipe)
    total = 0.0
    for key, target in wanted.items():
        item = have.get(key)
        if item is None:
            continue
        if item.get("unit") == target.get("unit"):
            total += 0.5
        quantity, expected = item.get("quantity"), target.get("quantity")
        if _is_number(quantity) and _is_number(expected):
            if abs(quantity - expected) <= QUANTITY_TOLERANCE * abs(expected):
                total += 0.5
    return total / len(wanted)


CONTENT_PARTS: Mapping[str, Callable[[Mapping[str, Any], Any], float]] = {
    "ingredients": ingredient_f1,
    "steps": step_coverage,
    "name": name_similarity,
    "servings": servings_match,
    "quantities": quantity_agreement,
}


def content_parts(reference: Mapping[str, Any], recipe: Any) -> dict[str, float]:
    """Every content part's score, for inspection."""
    return {name: part(reference, recipe) for name, part in CONTENT_PARTS.items()}


def content_score(reference: Mapping[str, Any], recipe: Any) -> float:
    """Weighted mean of :func:`content_parts` with :data:`CONTENT_WEIGHTS`."""
    parts = content_parts(reference, recipe)
    return sum(CONTENT_WEIGHTS[name] * parts[name] for name in CONTENT_WEIGHTS) / sum(CONTENT_WEIGHTS.values())


# -- validity ---------------------------------------------------------------------------------------
def quantities_positive(recipe: Any) -> bool:
    """Every ingredient has a finite number quantity > 0."""
    items = _list(recipe, "ingredients")
    return bool(items) and all(
        isinstance(item, dict) and _is_number(item.get("quantity")) and item["quantity"] > 0 for item in items
    )


def units_known(recipe: Any) -> bool:
    """Every ingredient's unit is one of the schema's units."""
    items = _list(recipe, "ingredients")
    return bool(items) and all(isinstance(item, dict) and item.get("unit") in UNITS for item in items)


def steps_non_empty(recipe: Any) -> bool:
    """There is at least one step and every step is a string with visible text."""
    steps = _list(recipe, "steps")
    return bool(steps) and all(isinstance(step, str) and step.strip() for step in steps)


def names_distinct(recipe: Any) -> bool:
    """Ingredients have names and no two normalise to the same name."""
    items = _list(recipe, "ingredients")
    keys = [name_key(item["name"]) for item in items if isinstance(item, dict) and isinstance(item.get("name"), str)]
    return bool(items) and len(keys) == len(items) and all(keys) and len(set(keys)) == len(keys)


def ingredients_used(recipe: Any) -> bool:
    """Every ingredient's head noun (e.g. "oil" for "olive oil") appears in some step."""
    items = _list(recipe, "ingredients")
    steps = _steps(recipe)
    if not items or not steps:
        return False
    used: set[str] = set()
    for step in steps:
        used.update(words(step))
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return False
        if head_noun(item["name"]) not in used:
            return False
    return True


def time_plausible(recipe: Any) -> bool:
    """prep_minutes and cook_minutes are numbers >= 0 and their sum is in (0, 24 h)."""
    if not isinstance(recipe, dict):
        return False
    prep, cook = recipe.get("prep_minutes"), recipe.get("cook_minutes")
    if not (_is_number(prep) and _is_number(cook)) or prep < 0 or cook < 0:
        return False
    return 0 < prep + cook < MAX_MINUTES


VALIDITY_CHECKS: Mapping[str, Callable[[Any], bool]] = {
    "quantities_positive": quantities_positive,
    "units_known": units_known,
    "steps_non_empty": steps_non_empty,
    "names_distinct": names_distinct,
    "ingredients_used": ingredients_used,
    "time_plausible": time_plausible,
}
"""The semantic checks, each pass/fail; validity is the share that pass."""


def validity_checks(recipe: Any) -> dict[str, bool]:
    """Every validity check's verdict, for inspection."""
    return {name: bool(check(recipe)) for name, check in VALIDITY_CHECKS.items()}


def validity_score(recipe: Any) -> float:
    """Share of :data:`VALIDITY_CHECKS` that pass."""
    verdicts = validity_checks(recipe)
    return sum(verdicts.values()) / len(verdicts)
