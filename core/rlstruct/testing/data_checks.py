"""Contract checks on a task's data and prompts: splits, determinism across interpreter runs,
records that round-trip through JSON, prompts that render through a chat template."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from ..data import DataError, load_records
from ..task import Prompt, Record, Task
from .inprocess import labelled, resolve_task
from .report import ContractFailure, describe_exception, fail_if, short

SPLITS = ("train", "validation", "test")
Sample = tuple[str, Record]


def prompt_key(task: Task, record: Record) -> str:
    """What the model sees for a record (messages and tools) as one string: the split identity."""
    prompt = task.build_prompt(record)
    return json.dumps({"messages": prompt.messages, "tools": prompt.tools}, sort_keys=True, default=repr)


def draw_splits(task: Task, size: int, seed: int) -> dict[str, list[Record]]:
    """``task.synthetic(split, size, seed)`` for the three splits (a raise is a contract failure)."""
    try:
        return {split: task.synthetic(split, size, seed) for split in SPLITS}
    except Exception as exc:
        problem = f"synthetic(split, {size}, {seed}) raised {describe_exception(exc)}"
        raise ContractFailure(task.name, {"splits": [problem]}) from None


def _first_repeat(keys: list[str]) -> tuple[int, int] | None:
    seen: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key in seen:
            return seen[key], index
        seen[key] = index
    return None


def check_splits(task: Task | str, size: int = 100, seed: int = 0) -> str:
    """``synthetic`` honours ``size``, is deterministic and seeded, never repeats a prompt within a
    split nor shares one between splits (not even across seeds), and refuses an unknown split."""
    task = resolve_task(task)
    problems: list[str] = []
    splits = draw_splits(task, size, seed)
    keys = {split: [prompt_key(task, r) for r in records] for split, records in splits.items()}
    for split, records in splits.items():
        if len(records) != size:
            problems.append(f"synthetic({split!r}, {size}, {seed}) gave {len(records)} records, not {size}")
        for n in (0, 1):
            got = len(task.synthetic(split, n, seed))
            if got != n:
                problems.append(f"synthetic({split!r}, {n}, {seed}) gave {got} records, not {n}")
        if task.synthetic(split, size, seed) != records:
            problems.append(f"synthetic({split!r}, {size}, {seed}) gives different records on a second call")
        repeat = _first_repeat(keys[split])
        if repeat:
            problems.append(f"{split}[{repeat[0]}] and {split}[{repeat[1]}] have the same prompt")
    if size >= 2 and task.synthetic("train", size, seed + 1) == splits["train"]:
        problems.append(f"seed {seed + 1} gives the same train records as seed {seed} (the seed is ignored)")
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1 :]:
            shared = set(keys[first]) & set(keys[second])
            if shared:
                problems.append(f"{first} and {second} share {len(shared)} prompts, e.g. {short(min(shared))}")
    for held_out in ("validation", "test"):
        other_seed = {prompt_key(task, r) for r in task.synthetic(held_out, size, seed + 1)}
        if other_seed & set(keys["train"]):
            problems.append(f"{held_out} records of seed {seed + 1} share prompts with train records of seed {seed}")
    try:
        task.synthetic("no-such-split", 1, seed)
        problems.append("synthetic('no-such-split', ...) returned instead of raising ValueError")
    except ValueError as exc:
        if "train" not in str(exc):
            problems.append(f"the unknown-split error does not list the known splits: {exc}")
    except Exception as exc:
        problems.append(f"an unknown split raises {type(exc).__name__}, not ValueError: {exc}")
    fail_if(task.name, "splits", problems)
    return f"3 splits of {size} records: sized, deterministic, seeded, distinct and disjoint (also across seeds)"


def fingerprint(task: Task, size: int, seed: int) -> str:
    """SHA-256 of every synthetic record of the three splits, its prompt and its reference."""
    digest = hashlib.sha256()
    for split in SPLITS:
        for record in task.synthetic(split, size, seed):
            item = [record, prompt_key(task, record), task.reference_completion(record)]
            digest.update(json.dumps(item, sort_keys=True, default=repr).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


_CHILD = """
import pickle, sys
from rlstruct.testing.data_checks import fingerprint
payload = pickle.loads(sys.stdin.buffer.read())
if isinstance(payload, tuple):  # (module, qualname): the task could not be pickled, rebuild it
    import importlib
    cls = importlib.import_module(payload[0])
    for part in payload[1].split("."):
        cls = getattr(cls, part)
    payload = cls()
print(fingerprint(payload, int(sys.argv[1]), int(sys.argv[2])))
"""


def _import_roots(task: Task) -> list[str]:
    """``sys.path`` plus the directory the task's module was imported from (it may have left it)."""
    roots = [p for p in sys.path if isinstance(p, str) and p and os.path.isdir(p)]
    module = sys.modules.get(type(task).__module__)
    file = getattr(module, "__file__", None)
    if file:
        parts = type(task).__module__.split(".")
        up = len(parts) if file.endswith("__init__.py") else len(parts) - 1
        roots.insert(0, str(Path(file).resolve().parents[up]))
    return roots


def check_hash_seed(task: Task | str, size: int = 20, seed: int = 0) -> str:
    """Records, prompts and references are the same in a fresh interpreter with another
    ``PYTHONHASHSEED`` (catches ``hash()`` of strings and set iteration order)."""
    task = resolve_task(task)
    other = "1" if os.environ.get("PYTHONHASHSEED") == "0" else "0"
    try:
        payload = pickle.dumps(task)
    except Exception:  # a task holding an unpicklable cache: rebuild it from its class
        payload = pickle.dumps((type(task).__module__, type(task).__qualname__))
    env = {**os.environ, "PYTHONHASHSEED": other, "PYTHONPATH": os.pathsep.join(_import_roots(task))}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(size), str(seed)],
        input=payload, capture_output=True, env=env, timeout=300,
    )
    if child.returncode != 0:
        last = (child.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
        fail_if(task.name, "hash-seed", [f"could not rebuild the task in a fresh interpreter ({last}); "
                                         "define its class at module level, or skip 'hash-seed'"])
    if child.stdout.decode().strip() != fingerprint(task, size, seed):
        fail_if(task.name, "hash-seed", [f"synthetic records, prompts or references change with PYTHONHASHSEED={other}: "
                                         "use hashlib instead of hash() and sorted() instead of set order"])
    return f"the same records, prompts and references under PYTHONHASHSEED={other} in a fresh interpreter"


def check_records(task: Task | str, samples: Sequence[Sample] | Sequence[Record]) -> str:
    """Every record is strict JSON (no NaN, tuples or non-string keys), comes back unchanged from
    ``normalize_record`` after a JSON round trip, and loads unchanged from a ``.jsonl`` file."""
    task, samples = resolve_task(task), labelled(samples)
    problems: list[str] = []
    for label, record in samples:
        try:
            text = json.dumps(record, allow_nan=False)
        except (TypeError, ValueError) as exc:
            problems.append(f"{label}: not JSON-serialisable: {exc}")
            continue
        loaded = json.loads(text)
        if loaded != record:
            problems.append(f"{label}: changes through JSON (tuples or non-string keys?): {short(record)}")
            continue
        try:
            normalized = task.normalize_record(loaded)
        except Exception as exc:
            problems.append(f"{label}: normalize_record refuses it: {describe_exception(exc)}")
            continue
        if normalized != record:
            problems.append(f"{label}: normalize_record changes it: {short(record)} -> {short(normalized)}")
    if not problems and samples:
        problems.extend(_file_round_trip(task, [record for _, record in samples]))
    fail_if(task.name, "records", problems)
    return f"{len(samples)} records round-trip through JSON, normalize_record and a .jsonl file"


def _file_round_trip(task: Task, records: list[Record]) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="rlstruct-kit-") as tmp:
        path = Path(tmp) / "records.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        try:
            loaded = load_records(task, str(path))
        except DataError as exc:
            return [f"loading them back from a .jsonl file fails: {exc}"]
    if loaded != records:
        return ["loading them back from a .jsonl file changes them"]
    return []


def _message_problems(prompt: Any) -> list[str]:
    if not isinstance(prompt, Prompt):
        return [f"build_prompt returned {type(prompt).__name__}, not Prompt"]
    problems = []
    if not isinstance(prompt.messages, list) or not prompt.messages:
        return ["build_prompt gave no messages"]
    for i, message in enumerate(prompt.messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            problems.append(f"messages[{i}] needs a role system, user or assistant: {short(message)}")
        elif not isinstance(message.get("content"), str):
            problems.append(f"messages[{i}]['content'] is {type(message.get('content')).__name__}, not str")
    if not any(isinstance(m, dict) and m.get("role") == "user" for m in prompt.messages):
        problems.append("no user message")
    if prompt.tools is not None:
        try:
            json.dumps(prompt.tools, allow_nan=False)
        except (TypeError, ValueError) as exc:
            problems.append(f"tools are not JSON: {exc}")
    return problems


def check_prompts(task: Task | str, samples: Sequence[Sample] | Sequence[Record], tokenizer: Any = None) -> str:
    """Every prompt is a :class:`Prompt` of system/user/assistant messages with text content and
    renders through ``tokenizer``'s chat template (as the trainer renders it) keeping every
    message's text and every tool's name. Default tokenizer: the kit's tiny ChatML one."""
    from ..engine.rollout import render_prompt  # imports torch: only when prompts are checked
    from .models import kit_tokenizer

    task, samples = resolve_task(task), labelled(samples)
    tokenizer = tokenizer if tokenizer is not None else kit_tokenizer()
    problems: list[str] = []
    for label, record in samples:
        try:
            prompt = task.build_prompt(record)
        except Exception as exc:
            problems.append(f"{label}: build_prompt raised {describe_exception(exc)}")
            continue
        found = _message_problems(prompt)
        if not found:
            try:
                text = render_prompt(tokenizer, prompt)
                tokenizer(text, add_special_tokens=False, verbose=False)
            except Exception as exc:
                found.append(f"the chat template fails: {describe_exception(exc)}")
            else:
                # stripped: some templates trim message text, which loses nothing the model needs
                lost = [m["role"] for m in prompt.messages if m["content"].strip() not in text]
                lost += [str(n) for n in _tool_names(prompt.tools) if n not in text]
                if lost:
                    found.append(f"the rendered prompt lost the text of {', '.join(lost)}")
        problems.extend(f"{label}: {p}" for p in found)
    fail_if(task.name, "prompts", problems)
    return f"{len(samples)} prompts render through the chat template"


def _tool_names(tools: list[dict[str, Any]] | None) -> list[Any]:
    names = []
    for tool in tools or []:
        function = tool.get("function", tool) if isinstance(tool, dict) else {}
        if isinstance(function, dict) and function.get("name"):
            names.append(function["name"])
    return names
