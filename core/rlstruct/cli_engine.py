"""The CLI commands that run the engine: ``train``, ``sft``, ``eval``, ``tiny-model``.

:mod:`rlstruct.cli` parses the arguments and imports this module only when one of them runs (it imports
torch). ``rlstruct.engine.commands``, their old home, re-exports them.

Everything that can be checked without a model (config, task name, reward weights, data) is
checked first, so a typo stops the run before any weights load.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import Config, config_from_overrides, load_config
from .data import DataError, load_records
from .engine import distributed
from .errors import RlstructError, UsageError
from .plugins import PluginManager
from .sandbox import RewardPool, SandboxLimits


def _prepare(config_path: str, overrides: list[str]):
    """``(cfg, task, spec)``: the config, its task and reward spec; for a ``[[task.mixture]]`` config,
    ``(cfg, [bound tasks], None)`` (:func:`rlstruct.mixture.bind_tasks`, each task with its own spec)."""
    from .mixture import bind_tasks, is_mixture

    cfg = load_config(config_path, overrides)
    pm = PluginManager()
    bound = bind_tasks(cfg, pm, config_path)  # names, reward tables, difficulty and curriculum checked
    if is_mixture(cfg):
        return cfg, bound, None
    return cfg, bound[0].task, bound[0].spec


def train_command(args: argparse.Namespace) -> int:
    from .engine import rundir
    from .engine.grpo import train, write_resolved_config
    from .engine.interrupt import TrainingInterrupted
    from .engine.rollout import PromptTooLong
    from .tracking import TrackingError, check_report_to

    cfg, task, spec = _prepare(args.config, list(args.overrides))
    try:
        check_report_to(cfg.run.report_to)  # a tracker whose library is missing stops the run before any work
    except TrackingError as exc:
        raise TrackingError(f"{args.config}: {exc}") from None
    resume = Path(args.resume) if args.resume else None
    # --resume DIR continues in DIR's run unless --output-dir says otherwise; the saved config says where.
    output_dir = rundir.choose_output_dir(resume, args.output_dir, cfg.run.output_dir)
    cfg.run.output_dir = str(output_dir)
    # under torchrun every process runs this command: rank 0 alone writes files and prints (distributed.py)
    dist = distributed.init(cfg.run.device, cfg.run.dist_timeout_s)
    distributed.check_divisible(cfg.grpo.prompts_per_step, dist)
    try:
        if resume is not None:
            rundir.check_steps(rundir.find_checkpoint(resume), cfg.grpo.steps)
        rundir.check_run_dirs(output_dir, resume)  # before anything is written
        if resume is not None:
            own = rundir.run_dir_of(resume)
            saved = (own if own is not None else resume) / "config.toml"
            for note in rundir.check_resume_config(saved, cfg, getattr(args, "allow_config_change", False)):
                if dist.is_main:
                    print(f"rlstruct: note: {note}", file=sys.stderr)
        distributed.barrier(dist, "checking the run directory")  # every rank read it before rank 0 writes
        if dist.is_main:
            rundir.prepare_output_dir(output_dir)
            write_resolved_config(cfg, output_dir)
        last = train(cfg, task, spec, output_dir, resume_from=resume)
    except TrainingInterrupted as exc:
        if dist.is_main:
            print(
                f"rlstruct: {exc}; continue with: rlstruct train {output_dir / 'config.toml'} --resume {output_dir}",
                file=sys.stderr,
            )
        return 130
    except RlstructError:  # one line and its exit status from rlstruct.cli.main (some are OSErrors too)
        raise
    except OSError as exc:  # e.g. the disk filled up while writing metrics
        print(f"rlstruct: error: {exc.filename or output_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if dist.is_main and last:
        print(
            f"trained {cfg.grpo.steps} steps: reward {last['reward_mean']:.3f}, "
            f"structure {last['reward/structure']:.3f}; model in {output_dir / 'final'}"
        )
    elif dist.is_main:
        print(f"nothing to train: the run is already at step {cfg.grpo.steps}; model in {output_dir / 'final'}")
    if cfg.run.eval_at_end:
        try:
            if spec is None:  # a mixture: every task, and their macro mean
                summary = _evaluate_tasks(str(output_dir / "final"), cfg, task, rows_path=output_dir / "eval_samples.jsonl")
            else:
                summary = _evaluate_dir(str(output_dir / "final"), cfg, task, spec,
                                        rows_path=output_dir / "eval_samples.jsonl")
        except PromptTooLong as exc:
            print(f"rlstruct: error: evaluation after training: {exc}", file=sys.stderr)
            return 1
        if dist.is_main:
            (output_dir / "eval.json").write_text(json.dumps(summary, indent=2))
            _print_table(summary)
    return 0


def sft_command(args: argparse.Namespace) -> int:
    from .engine.sft import sft

    cfg, task, _ = _prepare(args.config, list(args.overrides))
    out = Path(args.output_dir or f"{cfg.run.output_dir}-sft")
    dist = distributed.init(cfg.run.device, cfg.run.dist_timeout_s)  # under torchrun: data parallel (sft.py)
    result = sft(cfg, task, out)
    if dist.is_main:
        print(f"sft: {result['steps']} steps on {result['examples']} examples, loss {result['loss_first']:.3f} -> {result['loss_last']:.3f}; model in {out}")
    return 0


def _evaluate_dir(model_path: str, cfg: Config, task, spec, device: str | None = None, split: str | None = None,
                  limit: int | None = None, source: str | None = None, seed: int | None = None,
                  rows_path: Path | None = None, progress=None, *, out_dir: Path | None = None,
                  constrained: bool = False, plugin_manager: PluginManager | None = None,
                  how_to_raise: str = "--set grpo.max_prompt_tokens=N",
                  new_tokens_key: str = "eval.max_new_tokens") -> dict:
    """Evaluate the model at ``model_path`` on ``cfg``'s protocol; return the summary (see docs/evaluation.md).

    ``rows_path``: write every completion there at the end (``-o``). ``out_dir``: a saved, resumable run
    (``--out``: results.jsonl per batch, summary.json; :mod:`.eval_run`). ``how_to_raise`` and
    ``new_tokens_key`` name the settings the calling command accepts, for the too-long-prompt error.
    """
    from .data_skip import SkippedRecords
    from .engine.distributed_eval import evaluate_on_ranks
    from .engine.eval_run import EvalRunDir, records_sha256
    from .engine.evaluate import eval_protocol, evaluate
    from .engine.model import load_for_inference, pick_device
    from .engine.prompt_budget import resolve_prompt_budget

    split = split or cfg.task.eval_split
    source = source or cfg.task.source
    limit = cfg.task.eval_limit if limit is None else limit
    data_seed = cfg.task.data_seed if seed is None else seed
    skipped = SkippedRecords() if cfg.task.skip_bad_records else None
    # held out at the configured task.difficulty (never a curriculum's current value), so numbers compare
    difficulty = cfg.task.difficulty if source.strip() == "synthetic" else None
    records = load_records(task, source, split, limit, data_seed, skipped=skipped, difficulty=difficulty)
    _report_skipped(skipped)
    if not records:
        raise DataError(f"task {task.name!r}: no records to evaluate from source {source!r}, split {split!r}")
    if constrained:
        from .engine.constrained import _xgrammar

        _xgrammar()  # the extra is missing: say so before any model loads
    greedy = cfg.eval.greedy
    group = 1 if greedy else cfg.eval.samples_per_prompt
    data = {"source": source, "split": split, "limit": limit, "data_seed": data_seed, "records": len(records),
            "sha256": records_sha256(records), "skipped": skipped.to_json() if skipped else None,
            **({"difficulty": difficulty} if difficulty is not None else {})}
    metadata = _eval_metadata(model_path, cfg, spec, data, plugin_manager)
    dist = distributed.current()  # under torchrun the batches are shared out (distributed_eval.py)
    limits = SandboxLimits(cfg.reward.timeout_s, cfg.reward.memory_mb, distributed.workers_per_rank(cfg.reward.workers, dist))
    run_dir = None
    with RewardPool(task, spec, limits) as pool:
        model, tokenizer = load_for_inference(model_path, pick_device(device or cfg.run.device), cfg.model.dtype)
        budget = resolve_prompt_budget(cfg.grpo.max_prompt_tokens, model, tokenizer, cfg.eval.max_new_tokens,
                                       new_tokens_key=new_tokens_key, how_to_raise=how_to_raise)
        protocol = eval_protocol(
            task.name, greedy=greedy, temperature=cfg.eval.temperature, group=group, records=len(records),
            max_new_tokens=cfg.eval.max_new_tokens, max_prompt_tokens=budget.limit, batch_size=cfg.eval.batch_size,
            seed=cfg.run.seed, constrained=constrained,
        )
        metadata["protocol"] = {**protocol, "split": split}
        done, done_seconds = [], {}
        if out_dir is not None and dist.is_main:
            run_dir = EvalRunDir(out_dir, metadata)
            done, done_seconds = run_dir.open(len(records), cfg.eval.batch_size, group)
        summary, rows = evaluate_on_ranks(
            dist, evaluate, records, model=model, tokenizer=tokenizer, task=task, spec=spec, pool=pool,
            names=spec.names, group=group,
            greedy=greedy, temperature=cfg.eval.temperature, samples_per_prompt=cfg.eval.samples_per_prompt,
            max_new_tokens=cfg.eval.max_new_tokens, max_prompt_tokens=budget, batch_size=cfg.eval.batch_size,
            seed=cfg.run.seed, progress=progress, constrained=constrained, done_rows=done, done_seconds=done_seconds,
            on_batch=run_dir.append if run_dir is not None else None,
        )
    if rows_path is not None and dist.is_main:  # every completion with its breakdown, for looking at failures
        with open(rows_path, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    if run_dir is not None:
        return run_dir.finish(summary)
    return {**summary, **metadata}


def _eval_metadata(model_path: str, cfg: Config, spec, data: dict, plugin_manager: PluginManager | None) -> dict:
    """What a saved evaluation records besides its rows: data, model, seed, reward settings and versions."""
    from .engine.eval_run import plugin_versions, versions

    local = Path(model_path).expanduser()
    return {
        "data": data,
        "model": {"path": model_path, "resolved": str(local.resolve()) if local.exists() else model_path},
        "seed": cfg.run.seed,
        "reward_settings": {"weights": dict(spec.weights),
                            "extras": {e.component.name: {"weight": e.weight, **dict(e.params)} for e in spec.extras},
                            "timeout_s": cfg.reward.timeout_s, "memory_mb": cfg.reward.memory_mb},
        "versions": versions(plugin_versions(plugin_manager or PluginManager())),
    }


def _evaluate_tasks(model_path: str, cfg: Config, tasks, *, rows_path: Path | None = None,
                    out_dir: Path | None = None, split: str | None = None, **kw) -> dict:
    """Evaluate each task of a mixture on its own held-out records, with its own settings and reward, and
    return :func:`rlstruct.mixture.mixture_eval_summary` (every task's summary and their macro mean).

    ``rows_path`` gets every task's rows (each names its task); ``out_dir`` holds one resumable run per
    task (``OUT/<task>/``). Other keywords go to :func:`_evaluate_dir` for every task.
    """
    import dataclasses

    from .mixture import mixture_eval_summary

    summaries: dict[str, dict] = {}
    parts: list[Path] = []
    try:
        for t in tasks:
            part = None if rows_path is None else rows_path.with_name(f".{rows_path.name}.{t.name}.part")
            summaries[t.name] = _evaluate_dir(
                model_path, dataclasses.replace(cfg, task=t.settings), t.task, t.spec, rows_path=part, split=split,
                out_dir=None if out_dir is None else out_dir / t.name, **kw,
            )
            if part is not None:
                parts.append(part)
        if rows_path is not None and distributed.current().is_main:  # rank 0 wrote the parts
            with open(rows_path, "w", encoding="utf-8") as fh:
                for part in parts:
                    fh.write(part.read_text(encoding="utf-8"))
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return mixture_eval_summary(summaries, split or cfg.task.eval_split)


def _eval_targets(cfg: Config, plugins: PluginManager, name: str | None, where: str) -> list:
    """The bound tasks ``eval`` evaluates: ``--task NAME`` (with its mixture entry's settings and reward
    when the config has one), else the config's task, else every task of a mixture config. ``where``:
    the config file, for errors (``""`` without one)."""
    import dataclasses

    from .config import ConfigError
    from .mixture import bind_tasks, is_mixture

    if is_mixture(cfg):
        bound = bind_tasks(cfg, plugins, where or "--set")
        chosen = [t for t in bound if name is None or t.name == name]
        if chosen:
            return chosen
        print(f"rlstruct: warning: {where} is a mixture of {', '.join(t.name for t in bound)}; evaluating --task "
              f"{name} with its eval protocol and [reward] settings", file=sys.stderr)
        cfg = dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, name=name, mixture=[]))
    elif name is not None:
        cfg.task.name = name
    elif not cfg.task.name:
        raise ConfigError(f"give --task NAME ({where} names no task)" if where else "give --task NAME (no config names a task)")
    return bind_tasks(cfg, plugins, where or "--set")


def _report_skipped(skipped) -> None:
    for line in skipped.report() if skipped is not None else []:
        print(f"rlstruct: warning: {line}" if not line.startswith(" ") else line, file=sys.stderr)


def run_config_of(model: str) -> Path | None:
    """The saved config.toml of the run a model directory comes from: MODEL/config.toml, RUN/config.toml
    for RUN/final, or RUN/config.toml for RUN/checkpoints/step-N; ``None`` when there is none."""
    path = Path(model)
    candidates = [path / "config.toml"]
    if path.name == "final":
        candidates.append(path.parent / "config.toml")
    if path.parent.name == "checkpoints":
        candidates.append(path.parent.parent / "config.toml")
    return next((c for c in candidates if c.is_file()), None)


EVAL_HOW_TO_RAISE = "--max-prompt-tokens N (or --set grpo.max_prompt_tokens=N)"


def eval_command(args: argparse.Namespace) -> int:
    pm = PluginManager()
    if args.task:
        pm.task(args.task)  # before any model loads
    overrides = list(getattr(args, "overrides", None) or [])
    config_path = Path(args.config) if args.config else run_config_of(args.model)
    if config_path is not None:
        cfg = load_config(config_path, overrides, require=())  # the model comes from --model
        if not args.config:
            print(f"rlstruct: using the run's own config {config_path} for the eval protocol and reward settings "
                  "(--config chooses another)", file=sys.stderr)
        if args.task and cfg.task.name and cfg.task.name != args.task:
            print(f"rlstruct: warning: {config_path} is for task {cfg.task.name!r}; evaluating --task {args.task} "
                  "with its eval protocol and reward settings", file=sys.stderr)
    else:
        cfg = config_from_overrides(overrides)
    if getattr(args, "skip_bad_records", False):  # before binding: a mixture's entries inherit [task]'s value
        cfg.task.skip_bad_records = True
    targets = _eval_targets(cfg, pm, args.task, str(config_path) if config_path else "")  # a mixture: every task
    if args.sample:
        cfg.eval.greedy = False
    if args.max_new_tokens:
        cfg.eval.max_new_tokens = args.max_new_tokens
    if getattr(args, "max_prompt_tokens", None) is not None:
        cfg.grpo.max_prompt_tokens = args.max_prompt_tokens
    out_dir = Path(args.out) if getattr(args, "out", None) else None
    dist = distributed.init(args.device, cfg.run.dist_timeout_s)  # under torchrun: the batches are shared out
    if len(targets) > 1 and args.source:
        print("rlstruct: error: --source names one task's data; with a mixture config give --task too", file=sys.stderr)
        return 1
    common = dict(device=args.device, split=args.split, limit=args.limit, source=args.source, seed=args.seed,
                  rows_path=Path(args.output) if args.output else None, out_dir=out_dir,
                  constrained=getattr(args, "constrained", False), plugin_manager=pm,
                  how_to_raise=EVAL_HOW_TO_RAISE, new_tokens_key="eval.max_new_tokens (--max-new-tokens)")
    if len(targets) > 1:
        common.pop("source")
        summary = _evaluate_tasks(args.model, cfg, targets, **common)
    else:
        import dataclasses

        (target,) = targets
        summary = _evaluate_dir(args.model, dataclasses.replace(cfg, task=target.settings), target.task,
                                target.spec, **common)
    if not dist.is_main:  # rank 0 prints the result
        return 0
    if args.json:
        print(json.dumps(summary))
    else:
        _print_table(summary)
        if out_dir is not None and len(targets) > 1:
            print(f"results of each task in {out_dir}/<task>/results.jsonl, summaries in {out_dir}/<task>/summary.json")
        elif out_dir is not None:
            print(f"results in {out_dir / 'results.jsonl'}, summary in {out_dir / 'summary.json'}")
    return 0


def _print_table(summary: dict) -> None:
    if "tasks" in summary and "macro" in summary:  # a mixture: each task, then the macro mean
        for part in summary["tasks"].values():
            _print_table(part)
            print()
        macro, p = summary["macro"], summary["protocol"]
        print(f"macro mean over {macro['tasks']} tasks ({', '.join(summary['tasks'])}): {macro['n']} completions, "
              f"{p.get('decoding', '?')}, split {p.get('split', '?')}")
        print(f"{'component':<12} {'share = 1.0':>12} {'mean':>8}")
        for key, value in macro.items():
            if key.endswith("_mean"):
                name = key[: -len("_mean")]
                share = macro.get(name)
                print(f"{name:<12} {'n/a' if share is None else f'{share:.3f}':>12} "
                      f"{'n/a' if value is None else f'{value:.3f}':>8}")
        print(f"{'reward':<12} {'':>12} {macro['reward']:>8.3f}")
        return
    p = summary["protocol"]
    print(f"{p['task']}: {summary['n']} completions, {p['decoding']}, split {p.get('split', '?')}")
    print(f"{'component':<12} {'share = 1.0':>12} {'mean':>8}")
    for key in summary:
        if key.endswith("_mean"):
            name = key[: -len("_mean")]
            if summary[key] is None:  # the task does not implement this component
                print(f"{name:<12} {'n/a':>12} {'n/a':>8}")
                continue
            print(f"{name:<12} {summary[name]:>12.3f} {summary[key]:>8.3f}")
    print(f"{'reward':<12} {'':>12} {summary['reward']:>8.3f}")
    passes = summary.get("pass_at_k") or {}
    if passes:
        print("pass@k (all components 1.0): " + ", ".join(f"@{k} {v:.3f}" for k, v in passes.items()))
    errors = summary.get("error_types")
    if errors is not None:
        print("error types: " + (", ".join(f"{name} {count}" for name, count in errors.items()) or "none"))
    if "tokens_per_second" in summary:
        print(f"truncated {summary.get('truncated', 0)}, reward errors {summary.get('reward_errors', 0)} "
              f"(time-outs {summary.get('reward_timeouts', 0)}), {summary['tokens_per_second']:.1f} tokens/s")
    constrained = summary.get("constrained")
    if constrained:
        print(f"constrained ({constrained['engine']}): {constrained['compile_failures']} compile failure(s), "
              f"{constrained['no_schema']} prompt(s) without a schema, "
              f"{constrained['constrained_completions']} of {summary['n']} completions constrained to the end")
        for reason in constrained["failure_reasons"]:
            print(f"  {reason}")


def tiny_model_command(args: argparse.Namespace) -> int:
    from .tiny import build_tiny_model, config_for_width, default_corpus

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
        raise UsageError(f"--hidden: {exc}") from None
    path = build_tiny_model(args.out, corpus, config)
    print(f"tiny model saved to {path}")
    return 0
