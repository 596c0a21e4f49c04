"""The ``json-recipes`` task: write a recipe as one JSON object matching ``recipe.schema.json``.

Reward components (see docs/tasks/json-recipes.md):

* structure: 1.0 when the completion is one JSON *object* (bare, or inside a single fence around
  the whole completion, surrounding white space allowed), else 0;
* format: :func:`.schema_credit.format_credit` against the recipe schema (1.0 iff valid);
* content: agreement with the reference recipe, :func:`.recipe_scoring.content_score`;
* validity: semantic checks, :func:`.recipe_scoring.validity_score`.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Mapping

from rlstruct import Parsed, Prompt, RecordError, Task

from .completion import checked_record, parse_completion
from .recipe_schema import RECIPE_SCHEMA, schema_summary
from .recipe_scoring import content_score, validity_score
from .recipe_synthetic import synthetic_recipes
from .schema_credit import first_error, format_credit

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

    def synthetic(self, split: str, size: int, seed: int) -> list[dict[str, Any]]:
        """Seeded recipes composed from the built-in vocabulary (splits never share a prompt)."""
        return synthetic_recipes(split, size, seed)

    # -- prompting ----------------------------------------------------------------------------
    def build_prompt(self, record: dict[str, Any]) -> Prompt:
        """System message with the output rules and schema; the record's prompt as user message."""
        return Prompt(
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": record["prompt"]},
            ]
        )

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
        """Weighted agreement with the reference recipe (see :mod:`.recipe_scoring`)."""
        return content_score(record["reference"], parsed)

    def validity(self, record: dict[str, Any], parsed: Any) -> float:
        """Share of semantic checks passed (see :mod:`.recipe_scoring`)."""
        return validity_score(parsed)
