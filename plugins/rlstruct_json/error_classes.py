"""Error classes (``rlstruct.error_types``) of the two JSON tasks' failures.

Both tasks refine the core's class the same way:

* a structure failure is ``extra-text`` when a JSON object or array sits inside other text (prose,
  a fence plus an explanation), ``wrong-type`` when the completion is JSON of a type the task does
  not accept (json-recipes wants an object), else the core's ``not-parseable``;
* a format failure is named after the schema's complaints about the value, in this order of
  precedence: ``missing-key`` (``required``), ``invented-key`` (``additionalProperties`` /
  ``unevaluatedProperties``), ``wrong-type`` (``type``), else ``schema-violation``.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Mapping

from jsonschema.exceptions import best_match
from referencing.exceptions import Unresolvable

from rlstruct.error_types import first_failing_component, json_with_extra_text

from .completion import parse_completion
from .schema_credit import OutsideReference, validator_for

MAX_ERRORS_READ = 64
"""Validation errors looked at per completion (the class only needs the kinds present)."""

_BY_KEYWORD = {
    "required": "missing-key",
    "dependentRequired": "missing-key",
    "additionalProperties": "invented-key",
    "unevaluatedProperties": "invented-key",
    "type": "wrong-type",
}
_PRECEDENCE = ("missing-key", "invented-key", "wrong-type")


def _kinds(errors: Any) -> set[str]:
    """Classes of validation errors; an ``anyOf`` / ``oneOf`` failure is classed by its most relevant branch error."""
    found: set[str] = set()
    for error in errors:
        if error.context:  # a combinator: every branch failed; jsonschema's best_match picks the telling one
            error = best_match(error.context) or error
        kind = _BY_KEYWORD.get(str(error.validator))
        if kind is not None:
            found.add(kind)
    return found


def schema_error_type(schema: Mapping[str, Any], value: Any) -> str | None:
    """The class of ``value``'s violation of ``schema`` (see the module docstring); ``None`` if it is valid
    or cannot be checked."""
    try:
        errors = list(islice(validator_for(schema).iter_errors(value), MAX_ERRORS_READ))
    except (RecursionError, Unresolvable, OutsideReference, ValueError, TypeError):
        return None
    if not errors:
        return None
    kinds = _kinds(errors)
    return next((kind for kind in _PRECEDENCE if kind in kinds), "schema-violation")


def json_error_type(
    completion: str, breakdown: Any, schema: Mapping[str, Any] | None, accepts: type | tuple[type, ...] = object
) -> str | None:
    """Refine a JSON task's failure: see the module docstring. ``accepts``: the JSON types structure allows."""
    failing = first_failing_component(breakdown.components)
    if failing == "structure":
        if json_with_extra_text(completion):
            return "extra-text"
        try:
            value = parse_completion(completion)
        except ValueError:
            return None
        return None if isinstance(value, accepts) else "wrong-type"
    if failing == "format" and schema is not None:
        try:
            value = parse_completion(completion)
        except ValueError:
            return None
        return schema_error_type(schema, value)
    return None
