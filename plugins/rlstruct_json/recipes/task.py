"""The ``json-recipes`` task: write a recipe as one JSON object matching ``recipe.schema.json``.

Reward components (see docs/tasks/json-recipes.md):

* structure: 1.0 when the completion is one JSON *object* (bare, or inside a single fence around
  the whole completion, surrounding white space allowed), else 0;
* format: :func:`rlstruct_json.schema_credit.format_credit` against the recipe schema (1.0 iff valid);
* content: agreement with the reference recipe, :func:`.scoring.content_score`;
* validity: semantic checks, :func:`.scoring.validity_score`.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Mapping

from rlstruct import Parsed, RecordError, Task

from ..completion import checked_record, parse_completion
from ..error_classes import json_error_type
from ..schema_credit import first_error, format_credit
from .schema import RECIPE_SCHEMA, schema_summary
from .scoring import content_score, validity_score
from .synthetic import synthetic_recipes

SYSTEM_PROMPT = (
    "You write cooking recipes as JSON. Reply with ONLY the JSON object: no prose before or after "
    "it and no markdown. It must match this schema, with every key present and no other keys:\n"
    + schema_summary()
)
"""The system message of every json-recipes prompt."""


class JsonRecipesTask(Task):
    """Generate a recipe as a JSON object matching the shipped JSON Schema (Draft 2020-12).

    Records are ``{"prompt": str, "reference": recipe}``; the reference must validate against
    ``recipe.schema.json``. There is no Hugging Face default (``hf_dataset = None``): public
    recipe collections such as food.com's are not on the Hub in this shape, so use the built-in
    synthetic generator or a JSON Lines file of records in this format.
    """

    name: ClassVar[str] = "json-recipes"
    description: ClassVar[str] = "Recipe as a JSON object matching a JSON Schema (partial credit per constraint)."
    hf_dataset: ClassVar[str | None] = None

    # -- data ---------------------------------------------------------------------------------
    def normalize_record(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``prompt`` (non-empty text) and ``reference`` (a recipe valid under the schema)."""
        record = checked_record(raw)
        if "reference" not in record:
            raise RecordError("reference: missing (a recipe object is required)")
        reference = record["reference"]
        if not isinstance(reference, dict):
            raise RecordError(f"reference: expected a recipe object, got {type(reference).__name__}")
        problem = first_error(RECIPE_SCHEMA, reference, root="reference")
        if problem is not None:
            raise RecordError(f"{problem} (reference does not match the recipe schema)")
        return record

    def synthetic(self, split: str, size: int, seed: int, difficulty: float | None = None) -> list[dict[str, Any]]:
        """Seeded recipes composed from the built-in vocabulary (splits never share a prompt).

        ``difficulty`` in [0, 1] sets the number of ingredients and steps (``None``: the default, 0.5).
        """
        return synthetic_recipes(split, size, seed, difficulty)

    # -- prompting ----------------------------------------------------------------------------
    # the default build_prompt sends this system message (output rules and schema), then the user one
    system_prompt: ClassVar[str] = SYSTEM_PROMPT

    def user_prompt(self, record: dict[str, Any]) -> str:
        """The record's prompt is the user message."""
        return record["prompt"]

    def reference_completion(self, record: dict[str, Any]) -> str | None:
        """The reference recipe as compact JSON, keys in schema order."""
        return json.dumps(record["reference"], ensure_ascii=False, separators=(",", ":"))

    # -- reward -------------------------------------------------------------------------------
    def structure(self, record: dict[str, Any], completion: str) -> Parsed:
        """1.0 and the object when the completion is one JSON object; 0 otherwise."""
        try:
            value = parse_completion(completion)
        except ValueError:
            return Parsed(0.0, None)
        return Parsed(1.0, value) if isinstance(value, dict) else Parsed(0.0, None)

    def format(self, record: dict[str, Any], parsed: Any) -> float:
        """Share of schema constraints met; 1.0 exactly when the object validates."""
        if not isinstance(parsed, dict):
            return 0.0
        return format_credit(RECIPE_SCHEMA, parsed)

    def content(self, record: dict[str, Any], parsed: Any) -> float:
        """Weighted agreement with the reference recipe (see :mod:`.scoring`)."""
        return content_score(record["reference"], parsed)

    def validity(self, record: dict[str, Any], parsed: Any) -> float:
        """Share of semantic checks passed (see :mod:`.scoring`)."""
        return validity_score(parsed)

    # -- evaluation aids ------------------------------------------------------------------------
    def error_type(self, record: dict[str, Any], completion: str, breakdown: Any) -> str | None:
        """extra-text / wrong-type (JSON, but not an object) for structure; missing-key, invented-key,
        wrong-type or schema-violation for format (see :mod:`rlstruct_json.error_classes`)."""
        return json_error_type(completion, breakdown, RECIPE_SCHEMA, accepts=dict)

    def json_schema(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The recipe schema (``recipe.schema.json``), the same for every record."""
        return RECIPE_SCHEMA
