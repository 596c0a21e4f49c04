"""The ``function-calls`` task: emit the tool calls that fulfil a request.

Records: ``{"query": str, "tools": [...], "answers": [{"name": str, "arguments": {...}}]}``;
``tools`` and ``answers`` may be JSON strings (as in Salesforce/xlam-function-calling-60k).
Normalised records hold every tool in one JSON-Schema form (:mod:`.tool_schema`), the answers
as a parsed list, and ``unknown_types``: how many tool type names could not be mapped.

Reward components (docs/tasks/function-calls.md has the full rules):

* structure: 1.0 when the completion (see :mod:`.calls` for the accepted forms) parses to a
  non-empty list whose entries are all call objects; ``0.5 × share of call-shaped entries``
  when only some are; 0 when it does not parse, is empty, has no call-shaped entry or more than
  :data:`~.calls.MAX_CALLS` entries.
* format: mean over entries of the share of argument checks passed against the named tool's
  schema (:mod:`.arg_validation`); an unknown tool or a non-call entry scores 0.
* content: best one-to-one assignment of predicted to expected calls (:mod:`.ast_match`), a
  full match counting 1 and a same-tool call with wrong arguments half its share of matching
  arguments, divided by ``max(expected calls, predicted entries)``.
* validity: share of two checks: no call repeated (beyond repeats the reference itself has),
  and as many call objects as expected calls (non-call entries are not counted: padding with
  junk cannot reach the right count).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Mapping

from rlstruct import Parsed, Prompt, RecordError, Task, safe_json_loads

from .arg_validation import call_format_score
from .ast_match import best_assignment_total, call_pair_score
from .bfcl import from_bfcl, is_bfcl_row
from .calls import Call, ParsedCalls, as_call, call_key, parse_calls
from .calls_schema import calls_error_type, calls_schema
from .synthetic import generate
from .tool_schema import ToolShapeError, normalize_tool

__all__ = ["FunctionCallsTask", "SYSTEM_PROMPT"]

MAX_RECORD_FIELD_CHARS = 2_000_000
"""Bound on a JSON-string ``tools`` / ``answers`` field of a data record."""

SYSTEM_PROMPT = (
    "You are a function-calling assistant. Fulfil the user's request by calling the provided "
    "tools. Reply with only a JSON list of the calls, one object per call: "
    '[{"name": "<tool name>", "arguments": {"<parameter>": <value>, ...}}, ...]. '
    "Use several objects when the request needs several calls. Use only the provided tools and "
    "their declared parameters, give every required parameter with a value of the declared type, "
    "and leave out optional parameters the request does not mention. Write nothing else."
)


def _json_field(raw: Mapping[str, Any], key: str) -> Any:
    if key not in raw:
        raise RecordError(f"{key}: missing")
    value = raw[key]
    if isinstance(value, str):
        try:
            value = safe_json_loads(value, max_chars=MAX_RECORD_FIELD_CHARS)
        except ValueError as exc:
            raise RecordError(f"{key}: invalid JSON ({str(exc)[:120]})") from None
    if not isinstance(value, list):
        raise RecordError(f"{key}: expected a list, got {type(value).__name__}")
    return value


def _tools_by_name(record: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {tool["name"]: tool for tool in record.get("tools", [])}


class FunctionCallsTask(Task):
    """Tool calls for a request, scored against the expected calls with BFCL-style matching."""

    name = "function-calls"
    description = "Emit the JSON tool calls (name + arguments) that fulfil a request, given tool schemas."
    hf_dataset = "Salesforce/xlam-function-calling-60k"
    synthetic_size = 512

    # -- data ---------------------------------------------------------------------------------
    def normalize_record(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Parse JSON-string fields, normalise every tool once, check the answers.

        BFCL rows (``question``, ``function``, ``ground_truth``) are read too (:mod:`.bfcl`).
        """
        if not isinstance(raw, Mapping):
            raise RecordError("record: expected an object")
        if is_bfcl_row(raw):
            raw = from_bfcl(raw)
        query = raw.get("query")
        if not isinstance(query, str) or not query.strip():
            raise RecordError("query: expected a non-empty string")
        tools: list[dict[str, Any]] = []
        unknown = 0
        for index, item in enumerate(_json_field(raw, "tools")):
            try:
                tool, count = normalize_tool(item)
            except ToolShapeError as exc:
                raise RecordError(f"tools[{index}]: {exc}") from None
            if any(existing["name"] == tool["name"] for existing in tools):
                raise RecordError(f"tools[{index}].name: duplicate tool {tool['name']!r}")
            tools.append(tool)
            unknown += count
        if not tools:
            raise RecordError("tools: expected at least one tool")
        names = {tool["name"] for tool in tools}
        answers: list[dict[str, Any]] = []
        for index, item in enumerate(_json_field(raw, "answers")):
            call = as_call(item)
            if call is None:
                raise RecordError(f"answers[{index}]: expected {{\"name\": str, \"arguments\": {{...}}}}")
            if call.name not in names:
                raise RecordError(f"answers[{index}].name: {call.name!r} is not among the tools")
            answers.append({"name": call.name, "arguments": call.arguments})
        if not answers:
            raise RecordError("answers: expected at least one call")
        record = dict(raw)
        record.update(query=query, tools=tools, answers=answers)
        earlier = raw.get("unknown_types", 0)
        record["unknown_types"] = unknown + (earlier if isinstance(earlier, int) and earlier > 0 else 0)
        try:
            json.dumps(record)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"record: not JSON-serialisable ({exc})") from None
        return record

    def synthetic(
        self, split: str, size: int, seed: int, difficulty: float | None = None
    ) -> list[dict[str, Any]]:
        """Seeded records over the built-in tool library (see :mod:`.synthetic`), normalised.

        ``difficulty`` in [0, 1] sets parallel calls, tools offered and optional parameters
        (``None``: the default, 0.5).
        """
        return [self.normalize_record(raw) for raw in generate(split, size, seed, difficulty)]

    # -- prompting ----------------------------------------------------------------------------
    system_prompt = SYSTEM_PROMPT

    def user_prompt(self, record: dict[str, Any]) -> str:
        """The user message is the query."""
        return record["query"]

    def build_prompt(self, record: dict[str, Any]) -> Prompt:
        """The default system and user messages, plus the record's tools in their own slot."""
        return Prompt(
            messages=super().build_prompt(record).messages,
            tools=[{"type": "function", "function": tool} for tool in record["tools"]],
        )

    def reference_completion(self, record: dict[str, Any]) -> str:
        """The expected calls as a compact bare JSON list."""
        return json.dumps(record["answers"], separators=(",", ":"), ensure_ascii=False)

    # -- hierarchical reward --------------------------------------------------------------------
    def structure(self, record: dict[str, Any], completion: str) -> Parsed:
        """1.0 for a non-empty list of call objects, 0.5 × share when only some entries are calls."""
        parsed = parse_calls(completion)
        if parsed is None or not parsed.entries:
            return Parsed(0.0, None)
        good = len(parsed.calls)
        if good == 0:
            return Parsed(0.0, None)
        total = len(parsed.entries)
        return Parsed(1.0 if good == total else 0.5 * good / total, parsed)

    def format(self, record: dict[str, Any], parsed: Any) -> float:
        """Mean over entries of the share of schema checks passed (unknown tool: 0)."""
        if not isinstance(parsed, ParsedCalls) or not parsed.entries:
            return 0.0
        tools = _tools_by_name(record)
        scores = [
            call_format_score(entry, tools.get(entry.name)) if entry is not None else 0.0
            for entry in parsed.entries
        ]
        return sum(scores) / len(scores)

    def content(self, record: dict[str, Any], parsed: Any) -> float:
        """Best assignment of predicted to expected calls over max(expected, predicted entries)."""
        if not isinstance(parsed, ParsedCalls) or not parsed.entries:
            return 0.0
        tools = _tools_by_name(record)
        expected = [Call(a["name"], a["arguments"]) for a in record["answers"]]
        predicted = parsed.calls
        if not expected or not predicted:
            return 0.0
        scores = [
            [call_pair_score(exp, pred, (tools.get(exp.name) or {}).get("parameters")) for pred in predicted]
            for exp in expected
        ]
        return best_assignment_total(scores) / max(len(expected), len(parsed.entries))

    def validity(self, record: dict[str, Any], parsed: Any) -> float:
        """Share of: no repeated call (beyond the reference's own repeats); right number of calls."""
        if not isinstance(parsed, ParsedCalls) or not parsed.entries:
            return 0.0
        allowed = Counter(call_key(Call(a["name"], a["arguments"])) for a in record["answers"])
        seen = Counter(call_key(call) for call in parsed.calls)
        no_repeats = all(count <= max(1, allowed[key]) for key, count in seen.items())
        right_count = len(parsed.calls) == len(record["answers"])
        return (no_repeats + right_count) / 2

    # -- evaluation aids ------------------------------------------------------------------------
    def error_type(self, record: dict[str, Any], completion: str, breakdown: Any) -> str | None:
        """extra-text, or the class of a malformed entry, for structure; invented-key (a tool not offered),
        missing-key, wrong-type or schema-violation for format (see :mod:`.calls_schema`)."""
        return calls_error_type(record, completion, breakdown)

    def json_schema(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """A non-empty list of calls to the record's tools with arguments valid under each tool's parameters."""
        tools = record.get("tools")
        if not isinstance(tools, list) or not tools:
            return None
        return calls_schema(tools)
