"""The ``gsm8k-json`` task: grade-school math answered as ``{"reasoning": str, "answer": number}``.

Reward components (each in [0, 1], gated in this order by the core):

* structure: the completion (bare, or inside one code fence) parses as a JSON *object*.
* format: the object has exactly the keys ``reasoning`` (a string) and ``answer`` (a number).
* content: the answer equals the reference number (exact for integer references).
* validity: the reasoning is substantive and its last number agrees with the answer.

See docs/tasks/gsm8k-json.md for the full definitions.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from typing import Any, Mapping

from rlstruct import UnsafeInput, parse_json_completion
from rlstruct.error_types import first_failing_component, json_with_extra_text
from rlstruct.task import Parsed, Record, RecordError, Task

from .numbers import (
    canonical_number,
    json_number,
    last_number,
    number_value,
    numbers_equal,
    parse_number_text,
)
from .synthetic import generate

ANSWER_KEYS = ("reasoning", "answer")
"""The completion's keys, in the documented order."""
MIN_REASONING_CHARS = 10
"""Validity: the reasoning must have at least this many non-blank characters."""
EXTRA_KEY_PENALTY = 0.25
"""Format: subtracted once per key that is not ``reasoning`` or ``answer``."""
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"reasoning": {"type": "string"}, "answer": {"type": "number"}},
    "required": list(ANSWER_KEYS),
    "additionalProperties": False,
}
"""The JSON Schema of a completion (what ``rlstruct eval --constrained`` enforces)."""

_FINAL_LINE = re.compile(r"^####[ \t]*(.*?)[ \t]*$", re.M)
_CALCULATOR = re.compile(r"<<[^<>\n]*>>")

SYSTEM_PROMPT = (
    "You solve grade-school math word problems. Reply with a single JSON object and nothing "
    "else, in exactly this form:\n"
    '{"reasoning": "<your step-by-step working, ending with the final result>", '
    '"answer": <the final answer as a JSON number>}\n'
    'Use exactly the two keys "reasoning" (a string) and "answer" (a number). Write the answer '
    "as a plain number such as 42 or 3.5: no quotes, units, currency signs, percent signs or "
    "thousands separators."
)


def _split_answer(answer: str) -> tuple[str, str]:
    """Split GSM8K answer text into (rationale, final number text); ``ValueError`` if no ``####``."""
    matches = list(_FINAL_LINE.finditer(answer))
    if not matches:
        raise ValueError("no '#### <number>' line")
    last = matches[-1]
    return answer[: last.start()].rstrip(), last.group(1)


def clean_rationale(rationale: str) -> str:
    """Remove GSM8K calculator annotations (``<<48/2=24>>``) and trailing white space."""
    return _CALCULATOR.sub("", rationale).strip()


def reference_value(record: Record) -> Fraction:
    """The reference answer of a record, from ``final`` or from the ``#### <number>`` line."""
    final = record.get("final")
    if isinstance(final, str):
        value = parse_number_text(final)
    else:
        try:
            value = parse_number_text(_split_answer(str(record.get("answer", "")))[1])
        except ValueError:
            value = None
    if value is None:
        raise RecordError("answer: record has no parsable '#### <number>' reference")
    return value


class Gsm8kJsonTask(Task):
    """GSM8K math word problems, answered as ``{"reasoning": str, "answer": number}``."""

    name = "gsm8k-json"
    description = 'Grade-school math answered as JSON {"reasoning": str, "answer": number} (GSM8K).'
    hf_dataset = "openai/gsm8k"
    hf_config = "main"

    # -- data ---------------------------------------------------------------------------------
    def normalize_record(self, raw: Mapping[str, Any]) -> Record:
        """Check ``question``/``answer`` and add ``final``, the canonical reference number string.

        Raises :class:`RecordError` naming ``question``, ``answer`` or ``final`` when one is
        missing, of the wrong type, has no parsable ``#### <number>`` line, or disagrees.
        """
        if not isinstance(raw, Mapping):
            raise RecordError(f"record: expected an object, got {type(raw).__name__}")
        for key in ("question", "answer"):
            if key not in raw:
                raise RecordError(f"{key}: missing")
            if not isinstance(raw[key], str) or not raw[key].strip():
                raise RecordError(f"{key}: expected a non-empty string, got {type(raw[key]).__name__}")
        try:
            _, final_text = _split_answer(raw["answer"])
        except ValueError:
            raise RecordError("answer: no '#### <number>' line at the end of the answer text") from None
        value = parse_number_text(final_text)
        if value is None:
            raise RecordError(f"answer: '#### {final_text[:40]}' is not a number")
        try:
            final = canonical_number(value)
        except ValueError:
            raise RecordError(f"answer: '#### {final_text[:40]}' has no decimal form") from None
        if "final" in raw:
            given = parse_number_text(raw["final"]) if isinstance(raw["final"], str) else None
            if given is None or given != value:
                raise RecordError(f"final: {raw['final']!r} does not match the '#### {final_text}' line")
        record = dict(raw)
        record["final"] = final
        return record

    def synthetic(self, split: str, size: int, seed: int, difficulty: float | None = None) -> list[Record]:
        """Seeded GSM8K-style word problems (see :mod:`rlstruct_gsm8k.synthetic`), normalized.

        ``difficulty`` in [0, 1] sets the number of operations and the size of the numbers
        (``None``: the default, 0.5).
        """
        return [self.normalize_record(raw) for raw in generate(split, size, seed, difficulty)]

    # -- prompting ----------------------------------------------------------------------------
    # the default build_prompt sends this system message (the JSON contract), then the user one
    system_prompt = SYSTEM_PROMPT

    def user_prompt(self, record: Record) -> str:
        """The user message is the question."""
        return record["question"]

    def reference_completion(self, record: Record) -> str | None:
        """The GSM8K rationale without calculator annotations, and the reference number.

        When the rationale's last number is not the answer, a closing sentence stating the
        answer is appended so the reference also passes the validity check.
        """
        value = reference_value(record)
        try:
            rationale = clean_rationale(_split_answer(record["answer"])[0])
        except ValueError:
            rationale = ""
        closing = f"The answer is {canonical_number(value)}."
        if not rationale:
            rationale = closing
        else:
            last = last_number(rationale)
            if last is None or not numbers_equal(last, value):
                rationale = f"{rationale}\n{closing}"
        return json.dumps({"reasoning": rationale, "answer": json_number(value)}, ensure_ascii=False)

    # -- hierarchical reward --------------------------------------------------------------------
    def structure(self, record: Record, completion: str) -> Parsed:
        """1 when the completion (bare or in one code fence) parses to a JSON object, else 0."""
        if not isinstance(completion, str):
            return Parsed(0.0, None)
        try:
            value = parse_json_completion(completion)
        except (UnsafeInput, ValueError, RecursionError):
            return Parsed(0.0, None)
        if not isinstance(value, dict):
            return Parsed(0.0, None)
        return Parsed(1.0, value)

    def format(self, record: Record, parsed: Any) -> float:
        """Share of four checks, minus :data:`EXTRA_KEY_PENALTY` per invented key.

        Checks: ``reasoning`` present; ``answer`` present; ``reasoning`` is a string; ``answer``
        is a JSON number (a numeric *string* such as ``"42"`` earns half of this check).
        """
        if not isinstance(parsed, dict):
            return 0.0
        points = 0.0
        points += "reasoning" in parsed
        points += "answer" in parsed
        points += isinstance(parsed.get("reasoning"), str)
        answer = parsed.get("answer")
        if isinstance(answer, (int, float)) and not isinstance(answer, bool):
            points += 1.0
        elif isinstance(answer, str) and parse_number_text(answer) is not None:
            points += 0.5
        extra = sum(1 for key in parsed if key not in ANSWER_KEYS)
        return max(0.0, min(1.0, points / 4 - EXTRA_KEY_PENALTY * extra))

    def content(self, record: Record, parsed: Any) -> float:
        """1 when ``answer`` (number or numeric string) equals the reference, else 0."""
        if not isinstance(parsed, dict):
            return 0.0
        value = number_value(parsed.get("answer"))
        if value is None:
            return 0.0
        return 1.0 if numbers_equal(value, reference_value(record)) else 0.0

    def validity(self, record: Record, parsed: Any) -> float:
        """Share of two checks: the reasoning has at least :data:`MIN_REASONING_CHARS` non-blank
        characters; the last number in (the tail of) the reasoning equals the answer field
        (its magnitude suffices, so "a loss of 5" supports an answer of -5)."""
        if not isinstance(parsed, dict):
            return 0.0
        reasoning = parsed.get("reasoning")
        if not isinstance(reasoning, str):
            return 0.0
        passed = 0
        passed += len(reasoning.strip()) >= MIN_REASONING_CHARS
        answer = number_value(parsed.get("answer"))
        last = last_number(reasoning)
        if answer is not None and last is not None:
            passed += numbers_equal(last, answer) or numbers_equal(abs(last), abs(answer))
        return passed / 2

    # -- evaluation aids ------------------------------------------------------------------------
    def error_type(self, record: Record, completion: str, breakdown: Any) -> str | None:
        """Structure: ``extra-text`` (JSON inside prose) or ``wrong-type`` (JSON, not an object).
        Format: ``missing-key`` (no ``reasoning`` or ``answer``), ``invented-key`` (another key), else
        ``wrong-type`` (``answer`` not a number or ``reasoning`` not a string)."""
        failing = first_failing_component(breakdown.components)
        if failing not in ("structure", "format"):
            return None
        if failing == "structure" and json_with_extra_text(completion):
            return "extra-text"
        try:
            value = parse_json_completion(completion)
        except (ValueError, RecursionError):
            return None
        if failing == "structure":
            return None if isinstance(value, dict) else "wrong-type"
        if not isinstance(value, dict):
            return None
        if any(key not in value for key in ANSWER_KEYS):
            return "missing-key"
        if any(key not in ANSWER_KEYS for key in value):
            return "invented-key"
        return "wrong-type"

    def json_schema(self, record: Record) -> dict[str, Any] | None:
        """The answer object: exactly ``reasoning`` (a string) and ``answer`` (a number), in that order."""
        return ANSWER_SCHEMA
