"""Task configs: TOML files validated into typed dataclasses, one per component.

Every field has a docstring (the string literal under it); :func:`field_docs` reads them so the
same text is the ``--help`` epilog and docs/config.md. Loading rejects unknown sections and keys,
wrong types and missing required values with an error naming the file and the dotted key.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import json
import math
import textwrap
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from .errors import UsageError


class ConfigError(UsageError, ValueError):
    """A config file is wrong; the message names the file and the key."""


@dataclass
class TaskConfig:
    """Which plugin task to train on, and where its records come from."""

    name: str = ""
    """Task name as listed by `rlstruct tasks` (required)."""
    source: str = "synthetic"
    """Records: `synthetic`, `hf` (the task's public data set), a .jsonl/.json/.parquet path, or a data set name."""
    train_split: str = "train"
    """Split used for training."""
    eval_split: str = "test"
    """Held-out split used by evaluation (never trained on)."""
    train_limit: int = 512
    """Records loaded for training (synthetic: how many are generated). Range: >= 1."""
    eval_limit: int = 64
    """Held-out records evaluated after training and by `rlstruct eval`. Range: >= 1."""
    data_seed: int = 0
    """Seed of the synthetic generator (kept apart from the training seed so data stay fixed). Range: >= 0."""
    skip_bad_records: bool = False
    """Skip malformed records of a file or data set (counted, and reported with file:line and reason) instead of stopping at the first."""
    difficulty: float | None = None
    """Difficulty of the synthetic generator, 0 (easiest) to 1 (hardest); unset: the task's own default (docs/mixture.md)."""
    curriculum: dict[str, Any] = field(default_factory=dict)
    """[task.curriculum]: difficulty per step, `kind` = constant, linear (start, end, steps) or adaptive (start, end, threshold, patience, increment); docs/mixture.md."""
    mixture: list[dict[str, Any]] = field(default_factory=list)
    """[[task.mixture]]: several tasks in one run, each entry taking the keys of [task] (defaults: [task]'s) plus `weight` (> 0, default 1) and its own `reward` table (weights, extras); leave task.name out. docs/mixture.md."""


@dataclass
class RewardConfig:
    """How reward components are weighted and bounded."""

    weights: dict[str, float] = field(default_factory=dict)
    """Overrides of the task's component weights, e.g. {structure = 1.0, content = 2.0}. Range: each >= 0."""
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra registered components: [reward.extras.NAME] with `weight` and the component's parameters."""
    timeout_s: float = 2.0
    """Seconds one reward component may run on one completion before it scores 0 (time-out, reported). Range: > 0."""
    memory_mb: int = 1024
    """Memory (MiB) a reward worker may allocate; beyond it the component scores 0 (reported). Range: >= 1."""
    workers: int = 2
    """Reward worker processes (0 scores inline with no time or memory bound: debugging only). Range: >= 0."""


@dataclass
class ModelConfig:
    """The policy model: what to load and how to adapt it."""

    name_or_path: str = ""
    """Anything `from_pretrained` accepts: a local directory or a Hub name (required)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights dtype: `auto` is bfloat16 on CUDA when supported, float32 on CPU."""
    lora: bool = True
    """Train a LoRA adapter (the reference policy is the same model with the adapter disabled) instead of all weights."""
    lora_r: int = 16
    """LoRA rank. Range: >= 1."""
    lora_alpha: int = 32
    """LoRA scaling alpha. Range: >= 1."""
    lora_dropout: float = 0.0
    """LoRA dropout (0 keeps log-probs of old and new policy comparable). Range: [0, 1)."""
    lora_targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Module names LoRA adapts."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, ~30% more compute)."""
    trust_remote_code: bool = False
    """Allow model code from the model directory (off: only architectures transformers ships)."""


@dataclass
class GRPOConfig:
    """The GRPO algorithm and optimiser."""

    steps: int = 100
    """Optimiser steps (each = one rollout batch, num_iterations passes over it). Range: >= 1."""
    prompts_per_step: int = 8
    """Prompts P sampled per step. Range: >= 1."""
    group_size: int = 8
    """Completions G per prompt (the group whose mean is the baseline). Range: >= 2."""
    temperature: float = 1.0
    """Sampling temperature for rollouts (log-probs use the same temperature). Range: > 0."""
    top_p: float = 1.0
    """Nucleus sampling threshold for rollouts. Range: (0, 1]."""
    max_new_tokens: int = 256
    """Completion length cap; longer completions are truncated. Range: >= 1."""
    max_prompt_tokens: int = 0
    """Longest prompt in tokens; a longer one is an error naming the record. 0: auto, the model's context length (max_position_embeddings) minus the completion budget (max_new_tokens). Range: >= 0."""
    num_iterations: int = 1
    """Policy updates per rollout batch (>1 makes the importance ratio and clipping matter). Range: >= 1."""
    epsilon_low: float = 0.2
    """Lower clip range of the importance ratio (the ratio is clipped below at 1 - epsilon_low). Range: [0, 1)."""
    epsilon_high: float = 0.2
    """Upper clip range (DAPO's clip-higher uses e.g. 0.28). Range: >= 0."""
    beta: float = 0.0
    """KL coefficient to the reference policy (k3 estimator); 0 skips the reference forward pass. Range: >= 0."""
    loss_type: Literal["grpo", "bnpo", "dapo", "dr_grpo"] = "dapo"
    """Loss aggregation: grpo = mean per sequence then batch; bnpo/dapo = mean over tokens; dr_grpo = constant normaliser."""
    scale_rewards: bool = True
    """Divide advantages by the group std (false: Dr. GRPO's unscaled advantages)."""
    mask_truncated: bool = False
    """Leave completions that hit max_new_tokens out of the loss."""
    micro_batch_size: int = 16
    """Sequences per forward/backward pass; gradients accumulate over the step's batch. Range: >= 1."""
    learning_rate: float = 1e-4
    """Peak AdamW learning rate. Range: > 0."""
    weight_decay: float = 0.0
    """AdamW weight decay. Range: >= 0."""
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    """AdamW betas (two numbers). Range: each [0, 1)."""
    warmup_steps: int = 0
    """Linear warm-up steps. Range: >= 0."""
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    """Learning-rate decay after warm-up."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables). Range: >= 0."""
    logprob_chunk_size: int = 64
    """Completion positions per chunk when computing log-probs (bounds float32 logits memory); a micro-batch whose logits fit in 16 Mi floats (64 MiB) is scored in one chunk. Range: >= 1."""
    max_nan_steps: int = 3
    """Stop the run after this many consecutive steps with a non-finite loss (each is skipped). Range: >= 1."""
    generation: Literal["fast", "plain"] = "fast"
    """Rollout path: `fast` prefills each prompt once for its group and decodes in a lean loop (Llama, Mistral, Qwen2, Qwen3 decoders; others use `plain`); `plain` is Hugging Face `generate` on every row."""
    shared_prompt: bool = True
    """Encode each group's prompt once in the update, its G completions attending to it (same loss and gradients; Llama-family decoders, others use the plain update)."""
    micro_batch_tokens: int = 0
    """Also cap each micro-batch at this many tokens as the update processes them (0: rows only, `micro_batch_size`). Range: >= 0."""
    decode_threads: int = 0
    """Torch threads of the decode loop (0: unchanged; the fast path's prefill keeps the process's threads, the plain path uses this for all of `generate`); one thread keeps a small model's decoding steady when other work shares the cores (the demo's task configs set 1); on a quiet machine all threads are faster (docs/benchmarks.md). Range: >= 0."""


@dataclass
class SFTConfig:
    """Supervised fine-tuning on the task's reference completions (`rlstruct sft`)."""

    steps: int = 200
    """Optimiser steps. Range: >= 1."""
    batch_size: int = 16
    """Sequences per step. Range: >= 1."""
    learning_rate: float = 1e-3
    """AdamW learning rate (constant after warm-up). Range: > 0."""
    warmup_steps: int = 10
    """Linear warm-up steps. Range: >= 0."""


@dataclass
class EvalConfig:
    """The evaluation protocol, fixed before results are seen."""

    greedy: bool = True
    """Greedy decoding (false: sample with `temperature`)."""
    temperature: float = 1.0
    """Sampling temperature when not greedy. Range: > 0."""
    samples_per_prompt: int = 1
    """Completions per held-out prompt (greedy uses 1). Range: >= 1."""
    max_new_tokens: int = 256
    """Completion length cap during evaluation. Range: >= 1."""
    batch_size: int = 16
    """Prompts generated at once. Range: >= 1."""


@dataclass
class RunConfig:
    """Where outputs go, seeding, checkpointing and logging."""

    output_dir: str = "runs/default"
    """Run directory: config.toml, metrics.jsonl, samples.jsonl, checkpoints/."""
    seed: int = 0
    """Seed of torch, Python and sampling RNGs. Range: >= 0."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """`auto` picks CUDA when available."""
    save_every: int = 50
    """Checkpoint every N steps (and at the end, and at a Ctrl-C). Range: >= 1."""
    keep_last: int = 2
    """Checkpoints kept; older ones are deleted after a newer one is complete. Range: >= 1."""
    samples_per_step: int = 2
    """Completions per step written to samples.jsonl. Range: >= 0."""
    quiet: bool = False
    """No progress bar (one log line every `log_every` steps instead)."""
    log_every: int = 10
    """Steps between log lines in quiet mode. Range: >= 1."""
    eval_at_end: bool = True
    """Evaluate on the held-out split after training (written to eval.json)."""
    report_to: list[str] = field(default_factory=list)
    """Experiment trackers sent every metrics line, the resolved config and sample tables: any of tensorboard, wandb, trackio, mlflow (each needs the extra of its name, docs/tracking.md)."""
    fsdp: bool = False
    """Under torchrun: shard weights, gradients and optimiser state over the processes with PyTorch's fully_shard, for a model whose training state does not fit one device; false: every process holds the whole model (docs/distributed.md)."""
    dist_timeout_s: float = 600.0
    """Under torchrun: seconds a process waits for the others in a collective before the run fails (a rank that hangs or died). Range: > 0."""
    host_memory: Literal["auto", "return", "reuse", "keep"] = "auto"
    """What host (CPU) memory a step frees: `return` gives blocks of 1 MiB and more back to the OS when freed (glibc's mmap threshold fixed), so the resident set stays near what is live; `reuse` keeps freed memory in the process for the next step (no trimming below 1 GiB free, only blocks past 32 MiB mapped), so pages are not faulted in again every step; `keep` leaves the C library's defaults; `auto`: `return` for models whose weights take 512 MiB or more, `reuse` for smaller ones (a 15-20% faster step on the demo's tiny model). No effect without glibc."""


@dataclass
class Config:
    """A complete task config (a file in tasks/)."""

    task: TaskConfig = field(default_factory=TaskConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)


REQUIRED = ("task.name", "model.name_or_path")


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric key: a lower and/or an upper bound, each inclusive or not."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True

    def text(self) -> str:
        """The range as written in docstrings: ``>= 1``, ``> 0``, ``[0, 1)``, ``(0, 1]``."""
        if self.low is not None and self.high is not None:
            left, right = "[" if self.low_inclusive else "(", "]" if self.high_inclusive else ")"
            return f"{left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{'>=' if self.low_inclusive else '>'} {self.low:g}"
        return f"{'<=' if self.high_inclusive else '<'} {self.high:g}"

    def requirement(self) -> str:
        """The range as the end of an error message: ``must be >= 1`` / ``must be in [0, 1)``."""
        both = self.low is not None and self.high is not None
        return f"must be {'in ' if both else ''}{self.text()}"

    def __contains__(self, value: float) -> bool:
        if self.low is not None and not (value >= self.low if self.low_inclusive else value > self.low):
            return False
        if self.high is not None and not (value <= self.high if self.high_inclusive else value < self.high):
            return False
        return True


_AT_LEAST_0, _AT_LEAST_1, _POSITIVE = Range(0), Range(1), Range(0, low_inclusive=False)
_UNIT_OPEN_HIGH = Range(0, 1, high_inclusive=False)

RANGES: dict[str, Range] = {
    "task.train_limit": _AT_LEAST_1,
    "task.eval_limit": _AT_LEAST_1,
    "task.data_seed": _AT_LEAST_0,
    "reward.weights": _AT_LEAST_0,
    "reward.timeout_s": _POSITIVE,
    "reward.memory_mb": _AT_LEAST_1,
    "reward.workers": _AT_LEAST_0,
    "model.lora_r": _AT_LEAST_1,
    "model.lora_alpha": _AT_LEAST_1,
    "model.lora_dropout": _UNIT_OPEN_HIGH,
    "grpo.steps": _AT_LEAST_1,
    "grpo.prompts_per_step": _AT_LEAST_1,
    "grpo.group_size": Range(2),
    "grpo.temperature": _POSITIVE,
    "grpo.top_p": Range(0, 1, low_inclusive=False),
    "grpo.max_new_tokens": _AT_LEAST_1,
    "grpo.max_prompt_tokens": _AT_LEAST_0,
    "grpo.num_iterations": _AT_LEAST_1,
    "grpo.epsilon_low": _UNIT_OPEN_HIGH,
    "grpo.epsilon_high": _AT_LEAST_0,
    "grpo.beta": _AT_LEAST_0,
    "grpo.micro_batch_size": _AT_LEAST_1,
    "grpo.learning_rate": _POSITIVE,
    "grpo.weight_decay": _AT_LEAST_0,
    "grpo.adam_betas": _UNIT_OPEN_HIGH,
    "grpo.warmup_steps": _AT_LEAST_0,
    "grpo.max_grad_norm": _AT_LEAST_0,
    "grpo.logprob_chunk_size": _AT_LEAST_1,
    "grpo.max_nan_steps": _AT_LEAST_1,
    "grpo.micro_batch_tokens": _AT_LEAST_0,
    "grpo.decode_threads": _AT_LEAST_0,
    "sft.steps": _AT_LEAST_1,
    "sft.batch_size": _AT_LEAST_1,
    "sft.learning_rate": _POSITIVE,
    "sft.warmup_steps": _AT_LEAST_0,
    "eval.temperature": _POSITIVE,
    "eval.samples_per_prompt": _AT_LEAST_1,
    "eval.max_new_tokens": _AT_LEAST_1,
    "eval.batch_size": _AT_LEAST_1,
    "run.seed": _AT_LEAST_0,
    "run.save_every": _AT_LEAST_1,
    "run.keep_last": _AT_LEAST_1,
    "run.samples_per_step": _AT_LEAST_0,
    "run.log_every": _AT_LEAST_1,
    "run.dist_timeout_s": _POSITIVE,
}
"""Valid values of every numeric key (lists and tables: of each item). Each field's docstring ends with
``Range: <text>.`` (``Range: each <text>.`` for lists and tables), so --help and docs/config.md show it;
tests/test_config_ranges.py keeps the two in step."""

# Why a bound exists, where the bare range would leave a user guessing.
_RANGE_WHY = {"grpo.group_size": " (advantages compare completions in a group)"}


# ---------------------------------------------------------------------------------------------
def field_docs(cls: type) -> dict[str, str]:
    """Map each field of dataclass ``cls`` to the docstring written under it."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                docs[node.target.id] = str(after.value.value)
    return docs


def describe(cfg_cls: type = Config) -> str:
    """Every config key with its default and docstring, as text (for --help and docs)."""
    lines = []
    for section in dataclasses.fields(cfg_cls):
        sub = typing.get_type_hints(cfg_cls)[section.name]
        lines.append(f"[{section.name}]  {inspect.getdoc(sub)}")
        docs = field_docs(sub)
        default = sub()
        for f in dataclasses.fields(sub):
            value = getattr(default, f.name)
            lines.append(f"  {f.name} = {value!r}\n      {docs.get(f.name, '')}")
    return "\n".join(lines)


def _check(value: Any, hint: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(map(repr, typing.get_args(hint)))
            raise ConfigError(f"{where}: {key} must be one of {choices}, got {value!r}")
        return value
    if origin in (types.UnionType, typing.Union):
        for arg in typing.get_args(hint):
            try:
                return _check(value, arg, key, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {key} has the wrong type ({type(value).__name__})")
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{where}: {key} must be empty")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key} must be a list, got {type(value).__name__}")
        (item,) = typing.get_args(hint)
        return [_check(v, item, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {key} must be a table, got {type(value).__name__}")
        _, item = typing.get_args(hint)
        return {k: _check(v, item, f"{key}.{k}", where) for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
        if not math.isfinite(value):  # TOML has nan and inf literals; no key means anything by them
            raise ConfigError(f"{where}: {key} must be a finite number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
        return value
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise ConfigError(f"{where}: {key} must be a {hint.__name__}, got {value!r}")
        return value
    raise ConfigError(f"{where}: {key}: unsupported type {hint}")  # pragma: no cover - schema bug


def from_dict(data: Mapping[str, Any], where: str = "<config>", cls: type = Config, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from nested dicts, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in hints:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {prefix + close[0]!r}?)" if close else f" (known: {', '.join(names)})"
            raise ConfigError(f"{where}: unknown key {dotted!r}{hint}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: [{dotted}] must be a table")
            kwargs[key] = from_dict(value, where, hint, f"{dotted}.")
        else:
            kwargs[key] = _check(value, hint, dotted, where)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as nested plain dicts (for writing the resolved config.toml)."""
    return dataclasses.asdict(cfg)


def _parse_override(item: str, where: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"{where}: --set {item!r} must look like section.key=value")
    key, _, raw = item.partition("=")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string such as a path
    parts = key.strip().split(".")
    if len(parts) < 2:
        raise ConfigError(f"{where}: --set {key!r} must name a section and a key, e.g. grpo.steps")
    return parts, value


def load_config(
    path: str | Path, overrides: list[str] | None = None, require: tuple[str, ...] = REQUIRED
) -> Config:
    """Read a TOML task config, apply ``--set section.key=value`` overrides, validate everything.

    ``require`` lists the keys that must be set (``score`` needs no model, so it passes fewer).
    """
    path = Path(path)
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    return _build(data, overrides, require, where)


def config_from_overrides(overrides: list[str] | None = None, where: str = "--set") -> Config:
    """The built-in defaults with ``--set section.key=value`` overrides applied, validated like a file
    (for commands that run without a config, such as ``rlstruct eval --model M --task T``)."""
    return _build({}, overrides, (), where)


def _build(data: dict[str, Any], overrides: list[str] | None, require: tuple[str, ...], where: str) -> Config:
    for item in overrides or []:
        parts, value = _parse_override(item, where)
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{where}: --set {item!r}: {part!r} is not a table")
        node[parts[-1]] = value
    cfg = from_dict(data, where)
    for dotted in require:
        section, key = dotted.split(".")
        if dotted == "task.name" and cfg.task.mixture:
            continue  # a mixture names its tasks in its entries (checked below)
        if not getattr(getattr(cfg, section), key):
            raise ConfigError(f"{where}: missing required key {dotted!r}")
    check_ranges(cfg, where)
    _check_trackers(cfg, where)
    from .mixture import check_task_settings  # difficulty, curriculum and [[task.mixture]] entries

    check_task_settings(cfg, where)
    return cfg


def _check_trackers(cfg: Config, where: str) -> None:
    """Tracker names are checked with the config; whether their libraries are installed is checked by the
    command that opens them (`rlstruct train`), so evaluating a run needs no tracking library."""
    from .tracking import TrackingError, check_report_to  # imports no tracking library

    try:
        cfg.run.report_to = check_report_to(cfg.run.report_to, check_installed=False)
    except TrackingError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def check_ranges(cfg: Config, where: str = "<config>") -> None:
    """Raise :class:`ConfigError` naming the first key outside its documented range (see RANGES)."""
    for dotted, valid in RANGES.items():
        section, key = dotted.split(".")
        value = getattr(getattr(cfg, section), key)
        if isinstance(value, list):
            items = [(f"{dotted}[{i}]", v) for i, v in enumerate(value)]
        elif isinstance(value, dict):
            items = [(f"{dotted}.{k}", v) for k, v in value.items()]
        else:
            items = [(dotted, value)]
        for name, item in items:
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(f"{where}: {name} must be a finite number, got {item!r}")
            if item not in valid:
                raise ConfigError(f"{where}: {name} {valid.requirement()}, got {item!r}{_RANGE_WHY.get(dotted, '')}")
    if len(cfg.grpo.adam_betas) != 2:
        raise ConfigError(f"{where}: grpo.adam_betas must have two numbers, got {len(cfg.grpo.adam_betas)}")


def describe_markdown(cfg_cls: type = Config) -> str:
    """docs/config.md: every section and key with its type, default and docstring."""
    out = [
        "# Task config reference",
        "",
        "Task configs are TOML files (see `tasks/`). Every key is optional except `task.name` and",
        "`model.name_or_path`; an unknown key, a wrong type or a missing value is an error naming the file and key.",
        "Numeric keys state their valid range (`Range:`); a value outside it, `nan` or `inf` is an error too.",
        "Override any key on the command line with `--set section.key=value` (the value is read as TOML).",
        "This page is generated from the config dataclasses: `python -m rlstruct.config > docs/config.md`.",
        "",
    ]
    for section in dataclasses.fields(cfg_cls):
        sub = typing.get_type_hints(cfg_cls)[section.name]
        out += [f"## [{section.name}]", "", inspect.getdoc(sub) or "", "", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        docs = field_docs(sub)
        default = sub()
        hints = typing.get_type_hints(sub)
        for f in dataclasses.fields(sub):
            kind = str(hints[f.name]).replace("typing.", "").replace("<class '", "").replace("'>", "")
            kind = kind.replace("|", "\\|")  # `float | None`: an unescaped pipe would split the table cell
            value = json.dumps(getattr(default, f.name))
            out.append(f"| `{f.name}` | `{kind}` | `{value}` | {docs.get(f.name, '').replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(describe_markdown())
