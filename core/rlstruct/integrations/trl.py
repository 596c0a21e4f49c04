"""rlstruct rewards and data sets for TRL's ``GRPOTrainer``.

Usage::

    from trl import GRPOConfig, GRPOTrainer
    from rlstruct.integrations.trl import reward_functions, to_trl_dataset

    rewards = reward_functions("gsm8k-json")  # before loading the model: the workers fork small
    dataset = to_trl_dataset("gsm8k-json", "synthetic", "train", limit=1000)
    args = GRPOConfig(output_dir="out", reward_weights=rewards.weights)
    trainer = GRPOTrainer(model=model, reward_funcs=rewards, args=args, train_dataset=dataset)
    trainer.train()
    rewards.close()

How the pieces meet TRL (checked against ``GRPOTrainer._calculate_rewards`` in trl 1.16):

- TRL calls every reward function as ``func(prompts=..., completions=..., completion_ids=...,
  **columns)``, where ``columns`` holds each data set column other than ``prompt`` (one list per
  column, already repeated once per generation) plus ``trainer_state``, ``log_extra`` and
  ``log_metric``. Completions are strings, or for a conversational ``prompt`` column lists of
  messages (``[{"role": "assistant", "content": ...}]``); see :func:`completion_text`.
- :func:`reward_functions` returns one function per reward component, named
  ``rlstruct_<component>`` (TRL logs ``rewards/rlstruct_structure/mean`` and so on).
- TRL's total is ``Σ weight_i · reward_i``. :attr:`RewardFunctions.weights` are the reward spec's
  weights divided by their sum, so with ``GRPOConfig(reward_weights=rewards.weights)`` TRL's
  ``reward`` equals rlstruct's own total (a weighted mean in [0, 1]); the raw weights are in
  :attr:`RewardFunctions.spec_weights`.
- The record each completion is scored against is rebuilt from the data set's ``record`` column
  (``record_key``): the JSON text written by :func:`to_trl_dataset` (a dict is accepted too). The
  record is stored as JSON text because Arrow turns dicts whose keys differ from row to row into
  one struct type with ``None`` for the missing keys, which would change the record. The
  ``rlstruct_task`` column, when present, must name the scored task (mixing up data sets is an
  error, not a silent reward of 0).
- Scoring goes through one :class:`~rlstruct.sandbox.RewardPool` (bounded time and memory per
  component). TRL calls each component's function separately with the same batch; the first call
  scores every component of every completion and the others read the cached breakdowns. Only the
  last batch is cached, keyed on its completion texts and record column (compared by identity
  first, then by value), so a repeated call never rescores and a new batch always does.
- Model output never raises: a component that fails or times out scores 0. Failures are counted
  in :meth:`RewardFunctions.stats`, reported to TRL's ``log_metric`` as ``rlstruct/error_rate`` and
  ``rlstruct/timeout_rate`` once per scored batch, and warned once per component. Malformed data
  (no record column, a record that is not a JSON object, lengths that disagree) does raise.
"""

from __future__ import annotations

import json
import threading
import warnings
import weakref
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from ..data import load_records
from ..plugins import PluginManager
from ..reward import Breakdown, RewardSpec
from ..sandbox import RewardPool, SandboxLimits
from ..task import COMPONENTS, Prompt, Record, Task, applicable_components

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = [
    "DEFAULT_RECORD_KEY",
    "FUNCTION_PREFIX",
    "TASK_COLUMN",
    "RewardFunctions",
    "completion_text",
    "decode_record",
    "encode_record",
    "prompt_messages",
    "reward_functions",
    "to_trl_dataset",
]

DEFAULT_RECORD_KEY = "record"
"""Data set column holding each row's record as JSON text."""
TASK_COLUMN = "rlstruct_task"
"""Data set column naming the task the rows belong to."""
FUNCTION_PREFIX = "rlstruct_"
"""Prefix of every reward function's ``__name__`` (TRL's metric names)."""
TOOLS_HEADER = Prompt.TOOLS_HEADER
"""First line of the tool block folded into the system message (as the built-in trainer does)."""


# -- records and prompts --------------------------------------------------------------------------
def encode_record(record: Record) -> str:
    """A record as the JSON text stored in the data set's record column."""
    return json.dumps(record, ensure_ascii=False)


def decode_record(value: Any, row: int | None = None) -> Record:
    """Rebuild a record from its record-column value (JSON text or a mapping).

    Raises ``ValueError`` naming the row when the value is not a JSON object.
    """
    where = f"row {row}: " if row is not None else ""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (str, bytes, bytearray)):
        try:
            record = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"{where}record column is not valid JSON: {str(exc)[:200]}") from None
        if isinstance(record, dict):
            return record
        raise ValueError(f"{where}record column holds JSON {type(record).__name__}, expected an object")
    raise ValueError(f"{where}record column holds {type(value).__name__}, expected JSON text or a mapping")


def prompt_messages(prompt: Prompt) -> list[dict[str, str]]:
    """A task prompt as plain ``{"role", "content"}`` messages, tools folded into the system message.

    TRL renders every prompt with the same trainer-wide ``tools`` (Python callables), so a
    task's per-record tool schemas travel in the text instead, in the form the built-in trainer
    uses for chat templates without a tools slot.
    """
    return prompt.inline_tools()


def to_trl_dataset(
    task_name: str,
    source: str | None = "synthetic",
    split: str = "train",
    limit: int | None = None,
    *,
    seed: int = 0,
    plugin_manager: PluginManager | None = None,
    record_key: str = DEFAULT_RECORD_KEY,
) -> "datasets.Dataset":
    """Load a task's records (see :func:`rlstruct.data.load_records`) as a TRL prompt data set.

    Columns: ``prompt`` (conversational messages from ``task.build_prompt``, tools folded into
    the system message), ``record_key`` (the record as JSON text; :func:`decode_record` gives it
    back unchanged) and :data:`TASK_COLUMN` (the task name).
    """
    import datasets

    pm = plugin_manager if plugin_manager is not None else PluginManager()
    task = pm.task(task_name)
    if record_key in ("prompt", "completion", "completion_ids", TASK_COLUMN):
        raise ValueError(f"record_key {record_key!r} clashes with a column TRL or rlstruct uses")
    records = load_records(task, source, split, limit, seed)
    columns: dict[str, list[Any]] = {"prompt": [], record_key: [], TASK_COLUMN: []}
    for record in records:
        columns["prompt"].append(prompt_messages(task.build_prompt(record)))
        columns[record_key].append(encode_record(record))
        columns[TASK_COLUMN].append(task.name)
    return datasets.Dataset.from_dict(columns)


# -- completions --------------------------------------------------------------------------------
def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):  # multimodal parts: keep the text ones
        return "".join(
            part["text"] for part in content if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def _tool_calls_text(calls: Any) -> str | None:
    """Render parsed tool calls back as ``<tool_call>`` blocks (``None`` when one cannot be)."""
    if not calls:
        return ""
    if not isinstance(calls, (list, tuple)):
        return None
    blocks = []
    for call in calls:
        if not isinstance(call, Mapping):
            return None
        fn = call.get("function", call)
        if not isinstance(fn, Mapping):
            return None
        arguments = fn.get("arguments", {})
        try:
            name = json.dumps(fn.get("name"), ensure_ascii=False)
            args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            return None
        blocks.append(f'<tool_call>\n{{"name": {name}, "arguments": {args}}}\n</tool_call>')
    return "\n".join(blocks)


def completion_text(completion: Any) -> str | None:
    """The text a task scores for one TRL completion, or ``None`` when it has no usable shape.

    A string is used as is. A conversational completion (a list of messages, or one message)
    gives the text of its assistant messages joined by newlines; an assistant message's
    ``tool_calls`` (as TRL's response parsing produces them) are appended as
    ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` blocks, and tool or user messages
    are ignored.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if not isinstance(completion, (list, tuple)):
        return None
    pieces: list[str] = []
    for message in completion:
        if not isinstance(message, Mapping):
            return None
        if message.get("role", "assistant") != "assistant":
            continue
        calls = _tool_calls_text(message.get("tool_calls"))
        if calls is None:
            return None
        piece = "\n".join(p for p in (_content_text(message.get("content")), calls) if p)
        if piece:
            pieces.append(piece)
    return "\n".join(pieces)


# -- scoring ------------------------------------------------------------------------------------
class _BatchScorer:
    """Scores a batch once through a shared pool and remembers the last batch's breakdowns."""

    def __init__(self, task: Task, spec: RewardSpec, limits: SandboxLimits, record_key: str) -> None:
        self.task, self.spec, self.record_key = task, spec, record_key
        self.pool = RewardPool(task, spec, limits).__enter__()
        self._finalizer = weakref.finalize(self, RewardPool.close, self.pool)
        self._lock = threading.Lock()
        self._key: tuple[list[str], list[Any]] | None = None
        self._breakdowns: list[Breakdown] = []
        self.batches = self.cache_hits = self.completions = self.bad_completions = 0
        self.failed_completions = 0
        self.component_errors: Counter[str] = Counter()
        self.last_errors: dict[str, str] = {}
        self._warned: set[str] = set()

    def close(self) -> None:
        self._finalizer()

    def breakdowns(self, completions: Any, kwargs: Mapping[str, Any]) -> list[Breakdown]:
        if not isinstance(completions, Sequence) or isinstance(completions, str):
            raise TypeError(f"completions must be a list, got {type(completions).__name__}")
        if self.record_key not in kwargs:
            raise KeyError(
                f"rlstruct reward for task {self.task.name!r}: the batch has no {self.record_key!r} column; "
                f"build the data set with rlstruct.integrations.trl.to_trl_dataset (columns given: "
                f"{', '.join(sorted(k for k in kwargs if k not in ('trainer_state', 'log_extra', 'log_metric')))})"
            )
        raw_records = list(kwargs[self.record_key])
        if len(raw_records) != len(completions):
            raise ValueError(
                f"{len(completions)} completions but {len(raw_records)} values in column {self.record_key!r}"
            )
        tasks = kwargs.get(TASK_COLUMN)
        if tasks is not None:
            wrong = {str(t) for t in tasks if t != self.task.name}
            if wrong:
                raise ValueError(
                    f"rows of task {', '.join(sorted(wrong))} given to the reward of task {self.task.name!r}"
                )
        texts: list[str] = []
        bad = 0
        for completion in completions:
            text = completion_text(completion)
            if text is None:
                bad += 1
                text = ""
            texts.append(text)
        key = (texts, raw_records)
        with self._lock:
            if self._key is not None and self._key == key:
                self.cache_hits += 1
                return self._breakdowns
            records = [decode_record(value, row) for row, value in enumerate(raw_records)]
            timeouts_before = self.pool.timeouts
            breakdowns = self.pool.score(records, texts)
            self._key, self._breakdowns = key, breakdowns
            self.batches += 1
            self.completions += len(texts)
            self.bad_completions += bad
            failed = bad + self._count_errors(breakdowns)
            self.failed_completions += failed
            timeouts = self.pool.timeouts - timeouts_before
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and texts:
            log_metric("rlstruct/error_rate", failed / len(texts))
            log_metric("rlstruct/timeout_rate", timeouts / len(texts))
        return breakdowns

    def _count_errors(self, breakdowns: Iterable[Breakdown]) -> int:
        failed = 0
        for breakdown in breakdowns:
            if not breakdown.errors:
                continue
            failed += 1
            for name, text in breakdown.errors.items():
                self.component_errors[name] += 1
                self.last_errors[name] = text
                if name not in self._warned:
                    self._warned.add(name)
                    warnings.warn(
                        f"rlstruct task {self.task.name!r}: reward component {name!r} failed on a completion and "
                        f"scored 0 ({text}); further failures are counted in stats(), not warned",
                        RuntimeWarning,
                        stacklevel=4,
                    )
        return failed

    def stats(self) -> dict[str, Any]:
        return {
            "task": self.task.name,
            "batches_scored": self.batches,
            "cache_hits": self.cache_hits,
            "completions_scored": self.completions,
            "failed_completions": self.failed_completions,
            "bad_completions": self.bad_completions,
            "component_errors": dict(self.component_errors),
            "timeouts": self.pool.timeouts,
            "worker_crashes": self.pool.crashes,
            "last_errors": dict(self.last_errors),
        }


def _component_function(scorer: _BatchScorer, name: str) -> Callable[..., list[float]]:
    def reward(
        prompts: Any = None, completions: Any = None, completion_ids: Any = None, **kwargs: Any
    ) -> list[float]:
        return [float(b.components.get(name, 0.0)) for b in scorer.breakdowns(completions, kwargs)]

    reward.__name__ = reward.__qualname__ = f"{FUNCTION_PREFIX}{name}"
    reward.__doc__ = (
        f"TRL reward function: the {name!r} component of task {scorer.task.name!r} for each completion "
        f"(one shared scoring per batch; see rlstruct.integrations.trl)."
    )
    reward.component = name  # type: ignore[attr-defined]
    return reward


class RewardFunctions(list):
    """The TRL reward functions of one task, one per component, plus their weights.

    A ``list`` so it can be passed straight to ``GRPOTrainer(reward_funcs=...)``; pass
    :attr:`weights` as ``GRPOConfig(reward_weights=...)``. Holds worker processes: call
    :meth:`close` (or use it as a context manager) when training is done; they are also closed
    when the object is garbage-collected or the interpreter exits.
    """

    def __init__(self, functions: list[Callable[..., list[float]]], names: list[str], weights: list[float],
                 scorer: _BatchScorer) -> None:
        super().__init__(functions)
        self.names: list[str] = names
        """Component names, in the order of the functions."""
        self.spec_weights: list[float] = weights
        """The reward spec's weights of those components, same order."""
        total = sum(weights)
        self.weights: list[float] = [w / total for w in weights]
        """``spec_weights`` divided by their sum: TRL's weighted sum then equals rlstruct's weighted mean."""
        self._scorer = scorer

    @property
    def task(self) -> Task:
        return self._scorer.task

    @property
    def spec(self) -> RewardSpec:
        return self._scorer.spec

    @property
    def record_key(self) -> str:
        return self._scorer.record_key

    def breakdowns(self, completions: Sequence[Any], **columns: Any) -> list[Breakdown]:
        """Full breakdowns for a batch, called like a reward function (shares the batch cache)."""
        return self._scorer.breakdowns(completions, columns)

    def stats(self) -> dict[str, Any]:
        """Counters since creation: batches scored, cache hits, failures per component, time-outs."""
        return self._scorer.stats()

    def close(self) -> None:
        """Stop the reward worker processes (idempotent)."""
        self._scorer.close()

    def __enter__(self) -> "RewardFunctions":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reward_functions(
    task_name: str,
    *,
    weights: Mapping[str, float] | None = None,
    extras: Mapping[str, Mapping[str, Any]] | None = None,
    components: Sequence[str] | None = None,
    plugin_manager: PluginManager | None = None,
    timeout_s: float = 2.0,
    workers: int = 2,
    memory_mb: int = 1024,
    record_key: str = DEFAULT_RECORD_KEY,
) -> RewardFunctions:
    """TRL reward functions for ``task_name``, one per reward component, sharing one scorer.

    ``weights`` and ``extras`` are the ``[reward]`` config tables (see
    :meth:`rlstruct.reward.RewardSpec.build`); ``components`` picks a subset of the spec's
    component names (default: all, in evaluation order). ``timeout_s``, ``memory_mb`` and
    ``workers`` bound each component as in :class:`~rlstruct.sandbox.SandboxLimits` (``workers=0``
    scores in-process with no bound). ``record_key`` is the data set column with the records.

    Call it before loading the model: the worker processes are forked here.
    """
    pm = plugin_manager if plugin_manager is not None else PluginManager()
    task = pm.task(task_name)
    spec = RewardSpec.build(task, pm.rewards, weights, extras)
    # a component the task does not implement has no scores (None): never a TRL reward function
    known = [n for n in spec.names if n not in COMPONENTS or n in applicable_components(task)]
    chosen = list(known if components is None else components)
    unknown = [c for c in chosen if c not in known]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(
            f"components {chosen!r}: each must be one of {', '.join(known)}, given once, at least one"
        )
    spec_weight = {name: float(spec.weights.get(name, 0.0)) for name in COMPONENTS}
    spec_weight.update({term.component.name: term.weight for term in spec.extras})
    chosen_weights = [spec_weight[name] for name in chosen]
    if sum(chosen_weights) <= 0:
        raise ValueError(f"components {chosen!r} all have weight 0")
    scorer = _BatchScorer(task, spec, SandboxLimits(timeout_s, memory_mb, workers), record_key)
    functions = [_component_function(scorer, name) for name in chosen]
    return RewardFunctions(functions, chosen, chosen_weights, scorer)
