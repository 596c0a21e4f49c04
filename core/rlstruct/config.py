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
import textwrap
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping


class ConfigError(ValueError):
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
    """Records loaded for training (synthetic: how many are generated)."""
    eval_limit: int = 64
    """Held-out records evaluated after training and by `rlstruct eval`."""
    data_seed: int = 0
    """Seed of the synthetic generator (kept apart from the training seed so data stay fixed)."""


@dataclass
class RewardConfig:
    """How reward components are weighted and bounded."""

    weights: dict[str, float] = field(default_factory=dict)
    """Overrides of the task's component weights, e.g. {structure = 1.0, content = 2.0}."""
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra registered components: [reward.extras.NAME] with `weight` and the component's parameters."""
    timeout_s: float = 2.0
    """Seconds one reward component may run on one completion before it scores 0 (time-out, reported)."""
    memory_mb: int = 1024
    """Memory (MiB) a reward worker may allocate; beyond it the component scores 0 (reported)."""
    workers: int = 2
    """Reward worker processes (0 scores inline with no time or memory bound: debugging only)."""


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
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling alpha."""
    lora_dropout: float = 0.0
    """LoRA dropout (0 keeps log-probs of old and new policy comparable)."""
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
    """Optimiser steps (each = one rollout batch, num_iterations passes over it)."""
    prompts_per_step: int = 8
    """Prompts P sampled per step."""
    group_size: int = 8
    """Completions G per prompt (the group whose mean is the baseline)."""
    temperature: float = 1.0
    """Sampling temperature for rollouts (log-probs use the same temperature)."""
    top_p: float = 1.0
    """Nucleus sampling threshold for rollouts."""
    max_new_tokens: int = 256
    """Completion length cap; longer completions are truncated."""
    max_prompt_tokens: int = 512
    """Longest prompt in tokens; training stops with an error naming the record if a prompt is longer."""
    num_iterations: int = 1
    """Policy updates per rollout batch (>1 makes the importance ratio and clipping matter)."""
    epsilon_low: float = 0.2
    """Lower clip range of the importance ratio."""
    epsilon_high: float = 0.2
    """Upper clip range (DAPO's clip-higher uses e.g. 0.28)."""
    beta: float = 0.0
    """KL coefficient to the reference policy (k3 estimator); 0 skips the reference forward pass."""
    loss_type: Literal["grpo", "bnpo", "dapo", "dr_grpo"] = "dapo"
    """Loss aggregation: grpo = mean per sequence then batch; bnpo/dapo = mean over tokens; dr_grpo = constant normaliser."""
    scale_rewards: bool = True
    """Divide advantages by the group std (false: Dr. GRPO's unscaled advantages)."""
    mask_truncated: bool = False
    """Leave completions that hit max_new_tokens out of the loss."""
    micro_batch_size: int = 16
    """Sequences per forward/backward pass; gradients accumulate over the step's batch."""
    learning_rate: float = 1e-4
    """Peak AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    """AdamW betas."""
    warmup_steps: int = 0
    """Linear warm-up steps."""
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    """Learning-rate decay after warm-up."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables)."""
    logprob_chunk_size: int = 64
    """Completion positions per chunk when computing log-probs (bounds float32 logits memory)."""
    max_nan_steps: int = 3
    """Stop the run after this many consecutive steps with a non-finite loss (each is skipped)."""


@dataclass
class SFTConfig:
    """Supervised fine-tuning on the task's reference completions (`rlstruct sft`)."""

    steps: int = 200
    """Optimiser steps."""
    batch_size: int = 16
    """Sequences per step."""
    learning_rate: float = 1e-3
    """AdamW learning rate (constant after warm-up)."""
    warmup_steps: int = 10
    """Linear warm-up steps."""


@dataclass
class EvalConfig:
    """The evaluation protocol, fixed before results are seen."""

    greedy: bool = True
    """Greedy decoding (false: sample with `temperature`)."""
    temperature: float = 1.0
    """Sampling temperature when not greedy."""
    samples_per_prompt: int = 1
    """Completions per held-out prompt (greedy uses 1)."""
    max_new_tokens: int = 256
    """Completion length cap during evaluation."""
    batch_size: int = 16
    """Prompts generated at once."""


@dataclass
class RunConfig:
    """Where outputs go, seeding, checkpointing and logging."""

    output_dir: str = "runs/default"
    """Run directory: config.toml, metrics.jsonl, samples.jsonl, checkpoints/."""
    seed: int = 0
    """Seed of torch, Python and sampling RNGs."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """`auto` picks CUDA when available."""
    save_every: int = 50
    """Checkpoint every N steps (and at the end)."""
    keep_last: int = 2
    """Checkpoints kept; older ones are deleted after a newer one is complete."""
    samples_per_step: int = 2
    """Completions per step written to samples.jsonl."""
    quiet: bool = False
    """No progress bar (one log line every `log_every` steps instead)."""
    log_every: int = 10
    """Steps between log lines in quiet mode."""
    eval_at_end: bool = True
    """Evaluate on the held-out split after training (written to eval.json)."""


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


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a TOML task config, apply ``--set section.key=value`` overrides, validate everything."""
    path = Path(path)
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    for item in overrides or []:
        parts, value = _parse_override(item, where)
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{where}: --set {item!r}: {part!r} is not a table")
        node[parts[-1]] = value
    cfg = from_dict(data, where)
    for dotted in REQUIRED:
        section, key = dotted.split(".")
        if not getattr(getattr(cfg, section), key):
            raise ConfigError(f"{where}: missing required key {dotted!r}")
    _check_ranges(cfg, where)
    return cfg


def _check_ranges(cfg: Config, where: str) -> None:
    positive = {
        "grpo.steps": cfg.grpo.steps,
        "grpo.prompts_per_step": cfg.grpo.prompts_per_step,
        "grpo.group_size": cfg.grpo.group_size,
        "grpo.max_new_tokens": cfg.grpo.max_new_tokens,
        "grpo.num_iterations": cfg.grpo.num_iterations,
        "grpo.micro_batch_size": cfg.grpo.micro_batch_size,
        "grpo.logprob_chunk_size": cfg.grpo.logprob_chunk_size,
        "grpo.max_nan_steps": cfg.grpo.max_nan_steps,
        "run.save_every": cfg.run.save_every,
        "run.keep_last": cfg.run.keep_last,
        "sft.batch_size": cfg.sft.batch_size,
        "eval.batch_size": cfg.eval.batch_size,
        "eval.samples_per_prompt": cfg.eval.samples_per_prompt,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{where}: {key} must be >= 1, got {value}")
    if cfg.grpo.group_size < 2:
        raise ConfigError(f"{where}: grpo.group_size must be >= 2 (advantages compare completions in a group)")
    if not 0 < cfg.grpo.top_p <= 1:
        raise ConfigError(f"{where}: grpo.top_p must be in (0, 1], got {cfg.grpo.top_p}")
    if cfg.grpo.temperature <= 0:
        raise ConfigError(f"{where}: grpo.temperature must be > 0")
    if cfg.grpo.beta < 0:
        raise ConfigError(f"{where}: grpo.beta must be >= 0")
    if len(cfg.grpo.adam_betas) != 2:
        raise ConfigError(f"{where}: grpo.adam_betas must have two numbers")


def describe_markdown(cfg_cls: type = Config) -> str:
    """docs/config.md: every section and key with its type, default and docstring."""
    out = [
        "# Task config reference",
        "",
        "Task configs are TOML files (see `tasks/`). Every key is optional except `task.name` and",
        "`model.name_or_path`; an unknown key, a wrong type or a missing value is an error naming the file and key.",
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
            value = json.dumps(getattr(default, f.name))
            out.append(f"| `{f.name}` | `{kind}` | `{value}` | {docs.get(f.name, '').replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(describe_markdown())
