"""What a task plugin supplies: records, prompts and a hierarchical reward.

A task is a subclass of :class:`Task`. The engine only ever talks to this interface, so a new
structured format (YAML, SQL, ...) is a new subclass registered through the ``register_tasks``
hook, with no change to the trainer.

The reward is split into four ordered components, each a float in [0, 1]:

1. ``structure(record, completion) -> Parsed``: does the completion parse at all?  Returns the
   score and the parsed value that the later components read (they never re-parse raw text).
2. ``format(record, parsed)``: does it match the expected schema (required parts present, no
   invented ones, right types)?
3. ``content(record, parsed)``: does it agree with the reference?
4. ``validity(record, parsed)``: is it semantically plausible (internal consistency)?

The core calls them in that order and stops at the first 0 (a component is 0 when the one before
it is 0), catches every exception, clamps and bounds their time (see :mod:`rlstruct.sandbox`).
Component code should still be defensive: it receives untrusted model output.

Only ``structure`` is required. A task that leaves ``format``, ``content`` or ``validity`` as the
base method does not have that component: it is *not applicable* (weight 0, ``None`` in a
breakdown, ``null`` in JSON output) and gating passes over it (:func:`applicable_components`).

Less to write for a simple task:

- set ``system_prompt`` and define ``user_prompt(record)``, and the default :meth:`Task.build_prompt`
  returns those two chat messages;
- define ``random_record(rng)``, and the default :meth:`Task.synthetic` draws records from it with
  the core's split scheme (:func:`rlstruct.splits.generate_split`): seeded, de-duplicated, and with
  the splits kept apart by a hash of the user message.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, NamedTuple

from .errors import RunError
from .splits import generate_split

Record = dict[str, Any]
"""One data record, JSON-serialisable, exactly as the reward receives it."""

COMPONENTS: tuple[str, ...] = ("structure", "format", "content", "validity")
"""The four hierarchical reward components, in gating order."""


class RecordError(RunError, ValueError):
    """A data record is malformed. The message names the key at fault.

    Raised by :meth:`Task.normalize_record`; the loader adds the file and line.
    """


class Parsed(NamedTuple):
    """What :meth:`Task.structure` returns: the structure score and the parsed value."""

    score: float
    value: Any = None


@dataclass(frozen=True)
class Prompt:
    """A prompt as chat messages, plus optional tool definitions.

    ``tools`` (JSON-Schema function specs, OpenAI style) go into the chat template's ``tools``
    slot when the tokenizer's template supports one, and into the system message otherwise.
    """

    messages: list[dict[str, str]]
    tools: list[dict[str, Any]] | None = None

    TOOLS_HEADER: ClassVar[str] = "Available tools (JSON):"

    def inline_tools(self) -> list[dict[str, str]]:
        """The messages with the tool definitions folded into the system message, one JSON per line.

        Used for chat templates without a tools slot (and by the TRL integration, whose prompts share
        one trainer-wide tools list): appended to the first system message, or a new one.
        """
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in self.messages]
        if self.tools:
            block = self.TOOLS_HEADER + "\n" + "\n".join(json.dumps(t, ensure_ascii=False) for t in self.tools)
            if messages and messages[0]["role"] == "system":
                messages[0]["content"] = f"{messages[0]['content']}\n\n{block}"
            else:
                messages.insert(0, {"role": "system", "content": block})
        return messages


class Task:
    """Base class of every task. Subclass it, set the class attributes, implement the methods.

    Instances must be cheap to create and hold no open resources: the engine may create reward
    worker processes by ``fork`` that use the same instance.
    """

    name: ClassVar[str] = ""
    """Unique task name, e.g. ``json-recipes`` (lower case, dashes)."""
    description: ClassVar[str] = ""
    """One line shown by ``rlstruct tasks``."""
    hf_dataset: ClassVar[str | None] = None
    """Default Hugging Face dataset name for ``--source hf`` (``None``: no public data set)."""
    hf_config: ClassVar[str | None] = None
    """Configuration name passed to ``datasets.load_dataset`` (e.g. ``main`` for GSM8K)."""
    default_weights: ClassVar[Mapping[str, float]] = {
        "structure": 1.0,
        "format": 1.0,
        "content": 1.0,
        "validity": 1.0,
    }
    """Weights of the four components in the total (a weighted mean); configs may override."""
    synthetic_size: ClassVar[int] = 512
    """How many synthetic records a split has when no limit is given."""
    system_prompt: ClassVar[str] = ""
    """System message of the default :meth:`build_prompt` (no system message when empty)."""

    # -- data ---------------------------------------------------------------------------------
    def normalize_record(self, raw: Mapping[str, Any]) -> Record:
        """Check one raw record (from a file or data set) and return it in canonical form.

        Raise :class:`RecordError` naming the key at fault. The default returns a plain copy.
        """
        return dict(raw)

    def random_record(self, rng: random.Random) -> Record:
        """Draw one random record using only ``rng`` (define it to get the default :meth:`synthetic`).

        It need not care about splits or repeats: :meth:`synthetic` keeps the records whose prompt
        belongs to the asked split and drops repeated prompts.
        """
        raise NotImplementedError(f"task {self.name!r} has no random_record")

    def synthetic(self, split: str, size: int, seed: int) -> list[Record]:
        """Return ``size`` seeded synthetic records for ``split`` (works offline).

        The same (split, size, seed) must always give the same records, and different splits must
        not share prompts, so held-out evaluation is honest. The default draws from
        :meth:`random_record` through :func:`rlstruct.splits.generate_split` (namespace: the task
        name; split and distinctness decided by :meth:`prompt_text`, the user message).
        """
        if not overrides(self, "random_record"):
            raise NotImplementedError(f"task {self.name!r} has no synthetic generator (define random_record)")
        return generate_split(self.name, split, size, seed, self.random_record, key=self.prompt_text)

    # -- prompting ----------------------------------------------------------------------------
    def user_prompt(self, record: Record) -> str:
        """The user message for ``record`` (define it, with :attr:`system_prompt`, to get the default
        :meth:`build_prompt`)."""
        raise NotImplementedError(f"task {self.name!r} has no user_prompt")

    def build_prompt(self, record: Record) -> Prompt:
        """Turn a record into chat messages (the tokenizer's chat template is applied later).

        The default returns a system message (:attr:`system_prompt`, left out when empty) and a user
        message (:meth:`user_prompt`). Override it for tools, few-shot turns or anything more.
        """
        if not overrides(self, "user_prompt"):
            raise NotImplementedError(f"task {self.name!r} has no prompt (define user_prompt or build_prompt)")
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": self.user_prompt(record)})
        return Prompt(messages=messages)

    def prompt_text(self, record: Record) -> str:
        """The text that decides a record's split and its distinctness in the default :meth:`synthetic`.

        The default is the last user message of :meth:`build_prompt` (the system message is
        usually the same for every record). Override it when records differ elsewhere.
        """
        messages = self.build_prompt(record).messages
        users = [m["content"] for m in messages if m["role"] == "user"]
        return users[-1] if users else "\n".join(m["content"] for m in messages)

    def reference_completion(self, record: Record) -> str | None:
        """The ideal completion text for ``record`` (SFT target), or ``None`` if unknown."""
        return None

    # -- hierarchical reward --------------------------------------------------------------------
    def structure(self, record: Record, completion: str) -> Parsed:
        """Score whether ``completion`` parses; return the score and the parsed value."""
        raise NotImplementedError

    def format(self, record: Record, parsed: Any) -> float:
        """Score schema conformance of the parsed value (0 to 1). Optional: not applicable if left out."""
        raise NotImplementedError

    def content(self, record: Record, parsed: Any) -> float:
        """Score agreement with the record's reference (0 to 1). Optional: not applicable if left out."""
        raise NotImplementedError

    def validity(self, record: Record, parsed: Any) -> float:
        """Score semantic plausibility of the parsed value (0 to 1). Optional: not applicable if left out."""
        raise NotImplementedError

    # -- optional: evaluation aids ------------------------------------------------------------------
    def error_type(self, record: Record, completion: str, breakdown: Any) -> str | None:
        """Refine the core's class of a failed completion (:mod:`rlstruct.error_types`). Optional.

        Called only for a completion that scored below 1.0 somewhere and was neither empty, truncated
        nor stopped by a reward error; ``breakdown`` is its :class:`rlstruct.reward.Breakdown`.
        Return one of :data:`rlstruct.error_types.ERROR_TYPES` (e.g. ``"extra-text"`` for a
        structure failure, ``"missing-key"`` for a format one), or ``None`` to keep the core's class.
        Runs on untrusted output in a bounded worker: parse with the bounded helpers, never raise.
        """
        return None

    def json_schema(self, record: Record) -> dict[str, Any] | None:
        """The JSON Schema a completion for ``record`` must match, or ``None`` when there is none. Optional.

        ``rlstruct eval --constrained`` enforces it while decoding (the constrained-decoding baseline).
        """
        return None


def overrides(task: Task, method: str) -> bool:
    """Whether ``task``'s class (or the instance) replaces the base :class:`Task` ``method``."""
    found = getattr(type(task), method, None)
    return method in vars(task) or (found is not None and found is not getattr(Task, method))


def applicable_components(task: Task) -> tuple[str, ...]:
    """The hierarchical components ``task`` implements, in gating order (``structure`` always).

    A component left as the base method is not applicable: weight 0, ``None`` in breakdowns.
    """
    return tuple(name for name in COMPONENTS if name == "structure" or overrides(task, name))


@dataclass(frozen=True)
class RewardComponent:
    """An extra, named reward component any task config can add with a weight.

    ``score(record, completion, params)`` returns a float in [0, 1]; ``params`` holds
    ``defaults`` updated with the config's values (unknown keys are a config error).
    """

    name: str
    description: str
    score: Callable[[Record, str, Mapping[str, Any]], float]
    defaults: Mapping[str, Any] = field(default_factory=dict)
