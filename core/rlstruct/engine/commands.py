"""The engine's CLI commands: ``train``, ``sft``, ``eval``, ``tiny-model``.

Everything that can be checked without a model (config, task name, reward weights, data) is
checked first, so a typo stops the run before any weights load.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import Config, load_config
from ..data import load_records
from ..plugins import PluginManager
from ..reward import RewardSpec
from ..sandbox import RewardPool, SandboxLimits
from .model import ModelNotFound


def _prepare(config_path: str, overrides: list[str]):
    cfg = load_config(config_path, overrides)
    pm = PluginManager()
    task = pm.task(cfg.task.name)
    spec = RewardSpec.build(task, pm.rewards, cfg.reward.weights, cfg.reward.extras, where=f"{config_path}: reward")
    return cfg, task, spec


def train_command(args: argparse.Namespace) -> int:
    from .grpo import RunDirectoryInUse, TrainingStopped, ensure_fresh_or_resumed, train, write_resolved_config
    from .rollout import PromptTooLong

    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"run.output_dir={json.dumps(args.output_dir)}")
    cfg, task, spec = _prepare(args.config, overrides)
    output_dir = Path(cfg.run.output_dir)
    resume = Path(args.resume) if args.resume else None
    try:
        ensure_fresh_or_resumed(output_dir, resume)  # before config.toml is rewritten
        write_resolved_config(cfg, output_dir)
        last = train(cfg, task, spec, output_dir, resume_from=resume)
    except (TrainingStopped, RunDirectoryInUse, PromptTooLong, ModelNotFound) as exc:
        print(f"rlstruct: error: {exc}", file=sys.stderr)
        return 1
    if last:
        print(
            f"trained {cfg.grpo.steps} steps: reward {last['reward_mean']:.3f}, "
            f"structure {last['reward/structure']:.3f}; model in {output_dir / 'final'}"
        )
    if cfg.run.eval_at_end:
        summary = _evaluate_dir(str(output_dir / "final"), cfg, task, spec, rows_path=output_dir / "eval_samples.jsonl")
        (output_dir / "eval.json").write_text(json.dumps(summary, indent=2))
        _print_table(summary)
    return 0


def sft_command(args: argparse.Namespace) -> int:
    from .sft import sft

    cfg, task, _ = _prepare(args.config, list(args.overrides))
    out = Path(args.output_dir or f"{cfg.run.output_dir}-sft")
    try:
        result = sft(cfg, task, out)
    except ModelNotFound as exc:
        print(f"rlstruct: error: {exc}", file=sys.stderr)
        return 1
    print(f"sft: {result['steps']} steps on {result['examples']} examples, loss {result['loss_first']:.3f} -> {result['loss_last']:.3f}; model in {out}")
    return 0


def _evaluate_dir(model_path: str, cfg: Config, task, spec, device: str | None = None, split: str | None = None,
                  limit: int | None = None, source: str | None = None, seed: int | None = None,
                  rows_path: Path | None = None) -> dict:
    from .evaluate import evaluate
    from .model import load_for_inference, pick_device

    records = load_records(
        task, source or cfg.task.source, split or cfg.task.eval_split,
        cfg.task.eval_limit if limit is None else limit, cfg.task.data_seed if seed is None else seed,
    )
    limits = SandboxLimits(cfg.reward.timeout_s, cfg.reward.memory_mb, cfg.reward.workers)
    with RewardPool(task, spec, limits) as pool:
        model, tokenizer = load_for_inference(model_path, pick_device(device or cfg.run.device), cfg.model.dtype)
        summary, rows = evaluate(
            model, tokenizer, task, spec, records, pool,
            greedy=cfg.eval.greedy, temperature=cfg.eval.temperature, samples_per_prompt=cfg.eval.samples_per_prompt,
            max_new_tokens=cfg.eval.max_new_tokens, max_prompt_tokens=cfg.grpo.max_prompt_tokens,
            batch_size=cfg.eval.batch_size, seed=cfg.run.seed,
        )
    summary["protocol"]["split"] = split or cfg.task.eval_split
    if rows_path is not None:  # every completion with its breakdown, for looking at failures
        with open(rows_path, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return summary


def eval_command(args: argparse.Namespace) -> int:
    pm = PluginManager()
    task = pm.task(args.task)  # before any model loads
    if args.config:
        cfg = load_config(args.config, [f"task.name={json.dumps(args.task)}"])
    else:
        cfg = Config()
    if args.sample:
        cfg.eval.greedy = False
    if args.max_new_tokens:
        cfg.eval.max_new_tokens = args.max_new_tokens
    spec = RewardSpec.build(task, pm.rewards, cfg.reward.weights, cfg.reward.extras)
    from .rollout import PromptTooLong

    try:
        summary = _evaluate_dir(args.model, cfg, task, spec, device=args.device, split=args.split,
                                limit=args.limit, source=args.source, seed=args.seed,
                                rows_path=Path(args.output) if args.output else None)
    except (PromptTooLong, ModelNotFound) as exc:
        print(f"rlstruct: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary))
    else:
        _print_table(summary)
    return 0


def _print_table(summary: dict) -> None:
    p = summary["protocol"]
    print(f"{p['task']}: {summary['n']} completions, {p['decoding']}, split {p.get('split', '?')}")
    print(f"{'component':<12} {'share = 1.0':>12} {'mean':>8}")
    for key in summary:
        if key.endswith("_mean"):
            name = key[: -len("_mean")]
            print(f"{name:<12} {summary[name]:>12.3f} {summary[key]:>8.3f}")
    print(f"{'reward':<12} {'':>12} {summary['reward']:>8.3f}")


def tiny_model_command(args: argparse.Namespace) -> int:
    from ..tiny import build_tiny_model, config_for_width, default_corpus

    corpus = default_corpus()
    if args.task:
        pm = PluginManager()
        for name in args.task:
            task = pm.task(name)
            for record in load_records(task, "synthetic", "train", 300, 0):
                prompt = task.build_prompt(record)
                corpus.extend(m["content"] for m in prompt.messages)
                ref = task.reference_completion(record)
                if ref:
                    corpus.append(ref)
    try:
        config = config_for_width(args.hidden, args.layers, vocab_size=args.vocab_size, seed=args.seed)
    except ValueError as exc:
        print(f"rlstruct: error: --hidden: {exc}", file=sys.stderr)
        return 1
    path = build_tiny_model(args.out, corpus, config)
    print(f"tiny model saved to {path}")
    return 0
