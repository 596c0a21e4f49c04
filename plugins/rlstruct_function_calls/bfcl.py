"""Rows of the Berkeley Function Calling Leaderboard (BFCL), read as function-calls records.

BFCL ships each category as two JSON Lines files joined by ``id``:

* a question file, ``BFCL_v3_simple.json``: ``{"id", "question", "function"}``, where ``question`` is a
  list of turns, each a list of chat messages (older releases: a string), and ``function`` the tool
  documents (JSON-Schema-like, ``"type": "dict"`` at the top, BFCL type names inside);
* a possible-answer file, ``possible_answer/BFCL_v3_simple.json``: ``{"id", "ground_truth"}``, where
  ``ground_truth`` is a list of ``{tool name: {parameter: [accepted values, ...]}}``; ``""`` among the
  accepted values means the parameter may be left out.

:func:`join_bfcl` joins the two files into rows with ``question``, ``function`` and ``ground_truth``;
:func:`from_bfcl` (called by ``normalize_record``) turns such a row into a record: the last user
message is the query, the functions are the tools, and each expected call takes each parameter's
first accepted value that is not ``""`` (a parameter whose only accepted value is ``""`` is left out).
The reward compares with that one answer: BFCL's other accepted values are not kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Mapping

from rlstruct import RecordError

__all__ = ["from_bfcl", "is_bfcl_row", "join_bfcl"]


def is_bfcl_row(raw: Mapping[str, Any]) -> bool:
    """Whether ``raw`` has BFCL's keys (``question`` and ``function``) rather than the task's own."""
    return "question" in raw and "function" in raw and "query" not in raw and "tools" not in raw


def _query(question: Any) -> str:
    if isinstance(question, str):
        return question
    messages: list[Any] = []
    for turn in question if isinstance(question, list) else []:
        messages.extend(turn if isinstance(turn, list) else [turn])
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    raise RecordError("question: no user message (expected a string or a list of turns of chat messages)")


def _answers(ground_truth: Any) -> list[dict[str, Any]]:
    if not isinstance(ground_truth, list) or not ground_truth:
        raise RecordError("ground_truth: expected a non-empty list of {tool name: {parameter: [values]}}")
    answers = []
    for index, item in enumerate(ground_truth):
        if not isinstance(item, Mapping) or len(item) != 1:
            raise RecordError(f"ground_truth[{index}]: expected one {{tool name: {{parameter: [values]}}}}")
        ((name, params),) = item.items()
        if not isinstance(params, Mapping):
            raise RecordError(f"ground_truth[{index}].{name}: expected an object of parameter -> accepted values")
        arguments = {}
        for param, accepted in params.items():
            if not isinstance(accepted, list) or not accepted:
                raise RecordError(f"ground_truth[{index}].{name}.{param}: expected a non-empty list of accepted values")
            explicit = [value for value in accepted if value != ""]
            if explicit:
                arguments[param] = explicit[0]
        answers.append({"name": name, "arguments": arguments})
    return answers


def from_bfcl(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A BFCL row (question file row joined with its ``ground_truth``) in the task's record shape."""
    if "ground_truth" not in raw:
        raise RecordError(
            "ground_truth: missing; BFCL keeps the answers in possible_answer/<same file name>: join the two "
            "files by id (rlstruct_function_calls.bfcl.join_bfcl)"
        )
    row = {key: value for key, value in raw.items() if key not in ("question", "function", "ground_truth")}
    row.update(query=_query(raw["question"]), tools=raw["function"], answers=_answers(raw["ground_truth"]))
    return row


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def join_bfcl(question_file: str | Path, answer_file: str | Path) -> list[dict[str, Any]]:
    """The rows of a BFCL question file, each with the ``ground_truth`` of the answer row of the same ``id``
    (questions without an answer row are left out: BFCL's irrelevance categories have none)."""
    answers = {row["id"]: row["ground_truth"] for row in _jsonl(Path(answer_file))}
    return [{**row, "ground_truth": answers[row["id"]]} for row in _jsonl(Path(question_file)) if row["id"] in answers]
