"""The demo's stages, in order: tiny model, SFT, evaluation, GRPO, evaluation, report.

Each stage calls the engine function behind the command a user would run by hand
(``rlstruct tiny-model``, ``sft``, ``eval``, ``train``), in this process, with the task config's
settings; the demo adds only the wiring (which model each stage starts from, where it writes) and
the report.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import RunError
from .report import (
    DECODINGS,
    build_report,
    checkpoint_metrics,
    render_markdown,
    reward_failures,
    text_table,
    training_trend,
    verdict,
)
from .threads import DEFAULT_THREADS, set_torch_threads

if TYPE_CHECKING:
    from ..reward import RewardSpec
    from ..task import Task

MARKER = "demo.json"
"""Written first into --out: the invocation and stage timings; marks the directory as the demo's own."""

QUICK_OVERRIDES = (
    # A smoke run of every stage in well under a minute of CPU: a few steps, few prompts, short outputs.
    "task.train_limit=64", "task.eval_limit=4",
    "sft.steps=15", "sft.batch_size=8", "sft.warmup_steps=2",
    "grpo.steps=3", "grpo.prompts_per_step=2", "grpo.group_size=4", "grpo.max_new_tokens=40",
    "grpo.micro_batch_size=8", "grpo.warmup_steps=0",
    "eval.max_new_tokens=40", "eval.samples_per_prompt=2",
    "run.save_every=3",
)
QUICK_HIDDEN = 64


class DemoError(RunError, RuntimeError):
    """The demo cannot start or finish; the message names the file or option at fault."""


class StageFailed(RuntimeError):
    """A stage's own command failed and has already printed why; the demo exits with its status."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(f"exit status {exit_code}")
        self.exit_code = exit_code


@dataclass
class DemoOptions:
    """What ``rlstruct demo`` was asked for (its command-line options)."""

    task: str = "json-recipes"
    config: Path | None = None
    out: Path | None = None
    device: str = "auto"
    seed: int = 0
    quick: bool = False
    split: str = "test"
    threads: int = DEFAULT_THREADS
    hidden: int | None = None
    layers: int = 2
    overrides: list[str] = field(default_factory=list)
    overwrite: bool = False
    command: str = "rlstruct demo"


def find_task_config(task: str, cwd: Path | None = None) -> Path:
    """``tasks/<task>-tiny.toml`` in the working directory, else in the rlstruct source checkout."""
    name = f"{task}-tiny.toml"
    candidates = [(cwd or Path.cwd()) / "tasks" / name, Path(__file__).resolve().parents[3] / "tasks" / name]
    for path in candidates:
        if path.is_file():
            return path
    raise DemoError(f"no demo config for task {task!r}: looked for {' and '.join(map(str, candidates))}; pass --config FILE.toml")


def prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Create ``out``; replace an earlier demo there only with ``overwrite``; never touch anything else."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not (out / MARKER).is_file():
            raise DemoError(f"--out {out}: exists and does not hold an earlier demo (no {MARKER}); choose another --out")
        if not overwrite:
            raise DemoError(f"--out {out}: holds an earlier demo; pass --overwrite to replace it, or choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def demo_overrides(opts: DemoOptions) -> list[str]:
    """``--set`` overrides the demo applies to the task config: quick mode, seed, device, split, then the user's."""
    items = list(QUICK_OVERRIDES) if opts.quick else []
    items += [f"run.seed={opts.seed}", f"run.device={json.dumps(opts.device)}",
              f"task.eval_split={json.dumps(opts.split)}", "run.quiet=false"]
    return items + list(opts.overrides)


class _Stages:
    """Prints numbered stage headers and records how long each stage took."""

    def __init__(self, total: int) -> None:
        self.total, self.number, self.seconds = total, 0, {}
        self._name, self._start = "", 0.0

    def start(self, name: str, detail: str = "") -> None:
        self.finish()
        self.number += 1
        self._name, self._start = name, time.perf_counter()
        print(f"\n== [{self.number}/{self.total}] {name}" + (f": {detail}" if detail else "") + " ==", flush=True)

    def finish(self) -> None:
        if self._name:
            self.seconds[self._name] = round(time.perf_counter() - self._start, 1)
            self._name = ""


def _with(cfg: Config, **changes: Any) -> Config:
    """A deep copy of ``cfg`` with dotted keys changed, e.g. ``_with(cfg, **{"eval.greedy": False})``."""
    out = copy.deepcopy(cfg)
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        setattr(getattr(out, section), key, value)
    return out


def _evaluate(model_dir: Path, cfg: Config, task, spec, greedy: bool, rows_path: Path, label: str,
              constrained: bool = False) -> tuple[dict, list[dict]]:
    """One evaluation (``rlstruct eval --config ... [--sample] -o rows``) with a progress bar over completions."""
    from tqdm.auto import tqdm

    from ..cli_engine import _evaluate_dir

    eval_cfg = _with(cfg, **{"eval.greedy": greedy})
    per_prompt = 1 if greedy else cfg.eval.samples_per_prompt
    with tqdm(total=cfg.task.eval_limit * per_prompt, desc=label, unit="completion", dynamic_ncols=True) as bar:
        summary = _evaluate_dir(str(model_dir), eval_cfg, task, spec, rows_path=rows_path, progress=bar.update,
                                constrained=constrained)
    rows = [json.loads(line) for line in rows_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return summary, rows


def _model_info(model_dir: Path, hidden: int, layers: int) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    return {
        "parameters": sum(p.numel() for p in model.parameters()),  # shared (tied) tensors counted once
        "hidden_size": hidden, "layers": layers, "vocab_size": config["vocab_size"], "path": model_dir.name,
    }


def _device_name(name: str) -> str:
    import torch

    from ..engine.model import pick_device

    device = pick_device(name)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def run_demo(opts: DemoOptions) -> dict[str, Any]:
    """Run every stage; write the run directories, eval rows and the report into ``opts.out``; return report.json."""
    from ..cli_engine import _prepare
    from ..engine.model import quiet_transformers

    t0 = time.perf_counter()
    quiet_transformers()  # transformers' own weight-loading bars would bury the stage bars
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # reward workers fork after the tokenizer ran
    config_path = opts.config or find_task_config(opts.task)
    overrides = [f"task.name={json.dumps(opts.task)}", *demo_overrides(opts)]
    cfg, task, spec = _prepare(str(config_path), overrides)  # a bad config or task fails before any work
    device = _device_name(cfg.run.device)  # --device cuda without CUDA fails here, before anything is written
    out = opts.out or Path("runs") / f"demo-{opts.task}"
    prepare_out_dir(out, opts.overwrite)
    threads = set_torch_threads(opts.threads)
    invocation = {
        "command": opts.command, "task": opts.task, "config": str(config_path), "seed": opts.seed,
        "device": device, "threads": threads, "quick": opts.quick, "split": opts.split, "overrides": overrides,
    }
    (out / MARKER).write_text(json.dumps(invocation, indent=2) + "\n")
    stages = _Stages(6)
    print(f"rlstruct demo: task {opts.task}, config {config_path}, device {device}, {threads} torch thread(s), "
          f"seed {opts.seed}{', quick' if opts.quick else ''}; writing into {out}")

    tiny, model_info = _tiny_model_stage(stages, opts, out)
    sft_dir = _sft_stage(stages, cfg, task, tiny, out)
    eval_dir = out / "eval"
    eval_dir.mkdir()
    evaluations: dict[str, dict[str, tuple[dict, list[dict]]]] = {}
    protocol_note = (f"{cfg.task.eval_limit} {cfg.task.eval_split} prompts, greedy and sampled "
                     f"(T={cfg.eval.temperature:g}, {cfg.eval.samples_per_prompt} per prompt)")
    stages.start("evaluate SFT", protocol_note)
    evaluations["sft"] = _evaluate_checkpoint("sft", sft_dir, cfg, task, spec, eval_dir)
    if constrained_baseline_available(task):  # the paper's comparison row: structure by construction
        evaluations["sft_constrained"] = _evaluate_checkpoint(
            "sft_constrained", sft_dir, cfg, task, spec, eval_dir, constrained=True)
    grpo_dir = _grpo_stage(stages, cfg, config_path, overrides, sft_dir, out)
    stages.start("evaluate SFT+GRPO", protocol_note)
    evaluations["grpo"] = _evaluate_checkpoint("grpo", grpo_dir / "final", cfg, task, spec, eval_dir)

    stages.start("report")
    report = _write_report(out, cfg, config_path, opts, device, model_info, evaluations, time.perf_counter() - t0)
    stages.finish()
    invocation["stage_seconds"] = stages.seconds
    (out / MARKER).write_text(json.dumps(invocation, indent=2) + "\n")
    return report


def _tiny_model_stage(stages: _Stages, opts: DemoOptions, out: Path) -> tuple[Path, dict[str, Any]]:
    """Stage 1: build the tiny model (``rlstruct tiny-model``) in OUT/tiny-model; return it and its sizes."""
    from ..cli_engine import tiny_model_command

    hidden = opts.hidden or (QUICK_HIDDEN if opts.quick else 128)
    stages.start("tiny model", f"hidden {hidden}, {opts.layers} layers, tokenizer trained on {opts.task} text")
    tiny = out / "tiny-model"
    args = argparse.Namespace(out=str(tiny), task=[opts.task], vocab_size=1024, hidden=hidden, layers=opts.layers, seed=opts.seed)
    code = tiny_model_command(args)
    if code != 0:  # it printed why
        raise StageFailed(code)
    return tiny, _model_info(tiny, hidden, opts.layers)


def _sft_stage(stages: _Stages, cfg: Config, task: Task, tiny: Path, out: Path) -> Path:
    """Stage 2: warm-start the tiny model with SFT into OUT/sft (with its config.toml and sft.json)."""
    from ..engine.grpo import write_resolved_config
    from ..engine.sft import sft

    stages.start("SFT warm start", f"{cfg.sft.steps} steps of {cfg.sft.batch_size} reference completions")
    sft_dir = out / "sft"
    sft_cfg = _with(cfg, **{"model.name_or_path": str(tiny), "run.output_dir": str(sft_dir)})
    sft_result = sft(sft_cfg, task, sft_dir)
    write_resolved_config(sft_cfg, sft_dir)
    (sft_dir / "sft.json").write_text(json.dumps(sft_result, indent=2) + "\n")
    print(f"sft: loss {sft_result['loss_first']:.3f} -> {sft_result['loss_last']:.3f}")
    return sft_dir


def constrained_baseline_available(task: Task) -> bool:
    """Whether the constrained-decoding row can be measured: the grammar engine is installed (the `constrained`
    extra) and the task states a JSON Schema for its records (``Task.json_schema``)."""
    import importlib.util

    from ..task import overrides

    return importlib.util.find_spec("xgrammar") is not None and overrides(task, "json_schema")


def _evaluate_checkpoint(
    stage: str, model_dir: Path, cfg: Config, task: Task, spec: RewardSpec, eval_dir: Path, constrained: bool = False
) -> dict[str, tuple[dict, list[dict]]]:
    """Evaluate ``model_dir`` with every decoding; write EVAL/STAGE-DECODING.json(l); return {decoding: (summary, rows)}."""
    evaluations: dict[str, tuple[dict, list[dict]]] = {}
    for decoding in DECODINGS:
        summary, rows = _evaluate(model_dir, cfg, task, spec, decoding == "greedy",
                                  eval_dir / f"{stage}-{decoding}.jsonl", f"eval {stage} {decoding}", constrained)
        (eval_dir / f"{stage}-{decoding}.json").write_text(json.dumps(summary, indent=2) + "\n")
        evaluations[decoding] = (summary, rows)
    return evaluations


def _grpo_stage(
    stages: _Stages, cfg: Config, config_path: Path, overrides: list[str], sft_dir: Path, out: Path
) -> Path:
    """Stage 4: GRPO from the SFT model into OUT/grpo, through ``rlstruct train`` itself."""
    from ..cli_engine import train_command

    stages.start("GRPO from the SFT model",
                 f"{cfg.grpo.steps} steps of {cfg.grpo.prompts_per_step} prompts x {cfg.grpo.group_size} completions")
    grpo_dir = out / "grpo"
    # `rlstruct train` itself (run-directory checks, config.toml, Ctrl-C checkpoint); the demo evaluates after it.
    train_args = argparse.Namespace(
        config=str(config_path), output_dir=str(grpo_dir), resume=None, allow_config_change=False,
        overrides=[*overrides, f"model.name_or_path={json.dumps(str(sft_dir))}", "run.eval_at_end=false"],
    )
    code = train_command(train_args)
    if code != 0:  # train printed why (and, after Ctrl-C, how to resume the GRPO run)
        raise StageFailed(code)
    return grpo_dir


def _write_report(out: Path, cfg: Config, config_path: Path, opts: DemoOptions, device: str,
                  model_info: dict[str, Any], evaluations: dict, seconds: float) -> dict[str, Any]:
    from ..plot import INSTALL_HINT, PlotExtraMissing, default_window, plot_run, read_metrics

    results = {stage: {d: checkpoint_metrics(*evaluations[stage][d]) for d in DECODINGS} for stage in evaluations}
    sampled_summary = evaluations["sft"]["sampled"][0]
    protocol = {
        "split": sampled_summary["protocol"]["split"],
        "prompts": sampled_summary["protocol"]["records"],
        "greedy": True,
        "sampled": {"temperature": cfg.eval.temperature, "completions_per_prompt": cfg.eval.samples_per_prompt},
    }
    report = build_report(opts.task, seconds, device, model_info, protocol, results)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")

    metrics = read_metrics(out / "grpo")
    plot_file, plot_note = None, None
    try:
        plot_run(out / "grpo", out / "training_dynamics.png", title=f"GRPO on {opts.task} (from the SFT model)")
        plot_file = "training_dynamics.png"
    except PlotExtraMissing:
        plot_note = (f"No plot: matplotlib is not installed. `{INSTALL_HINT}`, then "
                     f"`rlstruct plot {out / 'grpo'} -o {out / 'training_dynamics.png'}`.")
    warning = reward_failures([summary for per in evaluations.values() for summary, _ in per.values()], metrics)
    markdown = render_markdown(
        report, config_path=_shown(config_path), max_new_tokens=cfg.eval.max_new_tokens, command=opts.command,
        plot_file=plot_file, plot_note=plot_note, trend=training_trend(metrics, default_window(len(metrics))),
        warning=warning,
    )
    (out / "report.md").write_text(markdown, encoding="utf-8")

    print("\nheld-out, sampled (the headline):")
    print(text_table(report, "sampled"))
    print("\nheld-out, greedy:")
    print(text_table(report, "greedy"))
    print("\n" + verdict(report))
    if warning:
        print(warning)
    if plot_note:
        print(f"rlstruct demo: no training_dynamics.png: matplotlib is missing; {INSTALL_HINT}", file=sys.stderr)
    print(f"report: {out / 'report.md'} (numbers in {out / 'report.json'})")
    return report


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (as a user would type it)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
