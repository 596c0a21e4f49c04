"""rlstruct's GRPO engine against TRL's GRPOTrainer, side by side on the same work, on this machine.

Same locally built model, same prompts from a task (step for step), same P prompts x G completions, max new
tokens, sampling (temperature 1, top-p 1), num_iterations, beta, learning rate, LoRA, micro-batch and number of
optimiser steps. rlstruct runs through `rlstruct train`; TRL's GRPOTrainer runs with its default generation
backend (transformers generate), twice: with its defaults (gradient checkpointing on) and with gradient
checkpointing off. Every run is its own process; the runs of a workload are alternated round by round; the
first step of every run is dropped as warm-up and the figures are medians over the remaining steps.

    python benchmarks/vs_trl.py                              # W1, W2, W3 (+ W4 when CUDA is present)
    python benchmarks/vs_trl.py --workloads W1,W3 --steps 5 --rounds 2
    python benchmarks/vs_trl.py --workloads W5 --steps 3      # Qwen2.5-0.5B shape on CPU: minutes per run
    python benchmarks/vs_trl.py --profile                     # also: where one rlstruct step's time goes
    python benchmarks/vs_trl.py --json out.json               # table on stdout, everything as JSON in out.json
    python benchmarks/vs_trl.py --json                        # JSON on stdout instead of the table

Speed ratios are rlstruct's completion tokens/s over the faster TRL run's; memory ratios are rlstruct's peak over
the leaner TRL run's. Peak memory is the resident set of the whole process tree (the run and its reward
workers) sampled every 50 ms on CPU, `torch.cuda.max_memory_allocated` on GPU; the tree's proportional set size
(shared pages split between processes) is reported too, sampled every second (reading it stalls the process).
Needs the `bench` extra (pip install -e '.[bench]').
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIDES = HERE / "vs_trl_sides.py"


@dataclass
class Workload:
    """One comparison: what both trainers are asked to do, and the rlstruct engine options used for it."""

    name: str
    description: str
    task: str
    model: str  # "tiny": the demo's tiny model (rlstruct tiny-model); "qwen0.5b": Qwen2.5-0.5B shape, random
    device: str
    dtype: str
    prompts: int
    group: int
    max_new_tokens: int
    beta: float
    iterations: int
    lora: bool
    micro_batch: int
    learning_rate: float = 1e-5
    many_tools: bool = False
    rlstruct_options: dict[str, Any] = field(default_factory=dict)


# W1-W3 decode on the process's threads (both cores). grpo.decode_threads = 1 was named for them until
# 2026-12-02; measured again once the memory sampler stopped stalling the runs, and with run.host_memory =
# reuse, two threads decode W1 faster (0.28 s against 0.32 s a step). tasks/*-tiny.toml keep one thread so the
# demo never waits on a core that other work keeps busy.

WORKLOADS = {
    "W1": Workload("W1", "CPU, demo scale: tiny model, json-recipes, full fine-tuning", "json-recipes", "tiny",
                   "cpu", "float32", 4, 8, 200, beta=0.0, iterations=1, lora=False, micro_batch=32),
    "W2": Workload("W2", "CPU: W1 with beta 0.04, num_iterations 2, LoRA r 8", "json-recipes", "tiny",
                   "cpu", "float32", 4, 8, 200, beta=0.04, iterations=2, lora=True, micro_batch=32),
    "W3": Workload("W3", "CPU, long prompts: function-calls with every tool offered (1,000+ prompt tokens), "
                   "short answers", "function-calls", "tiny", "cpu", "float32", 4, 8, 64, beta=0.0, iterations=1,
                   lora=False, micro_batch=32, many_tools=True),
    "W4": Workload("W4", "GPU: Qwen2.5-0.5B shape (random weights), bf16, LoRA r 8, beta 0.04", "json-recipes",
                   "qwen0.5b", "cuda", "bfloat16", 8, 8, 256, beta=0.04, iterations=1, lora=True, micro_batch=16),
    "W5": Workload("W5", "CPU at a real shape: Qwen2.5-0.5B shape (random weights), float32, small local "
                   "tokenizer, LoRA r 8, beta 0.04", "json-recipes", "qwen0.5b", "cpu", "float32", 2, 4, 64,
                   beta=0.04, iterations=1, lora=True, micro_batch=8,
                   # activations of a 24-layer model at a real width dominate memory: recompute them per layer
                   rlstruct_options={"model.gradient_checkpointing": True}),
}

# rlstruct's paths before this benchmark's optimisations (for --sides rlstruct-plain)
PLAIN_OPTIONS = {"grpo.generation": "plain", "grpo.shared_prompt": False}
SIDE_NAMES = ("rlstruct", "trl", "trl-no-gc", "rlstruct-plain")


# -- running one process and watching its memory ----------------------------------------------------------------
class TreeMemory(threading.Thread):
    """Samples the resident (RSS) and proportional (PSS) set size of a process and all its descendants.

    RSS is read every ``every_s`` (a counter the kernel keeps: cheap). PSS is read every ``pss_every_s`` only:
    the kernel computes it by walking the process's page tables under its memory-map lock, which stalls the
    process's own mmap/munmap calls meanwhile; sampled every 50 ms it slowed rlstruct's W1 update from 0.36 s
    to 0.47 s, so the instrument was changing what it measured.
    """

    def __init__(self, pid: int, every_s: float = 0.05, pss_every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.pss_every = max(1, round(pss_every_s / every_s))
        self.peak_rss = self.peak_pss = 0
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        tick = 0
        while not self._halt.is_set():
            rss = pss = 0
            with_pss, tick = tick % self.pss_every == 0, tick + 1
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for proc in procs:
                try:
                    rss += proc.memory_info().rss
                    pss += _pss(proc.pid) if with_pss else 0
                except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
                    continue
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_side(kind: str, job: dict[str, Any], work: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run one worker process; return its result with the peak memory of its process tree."""
    tag = f"{job.get('tag', kind)}"
    job_path, result_path, log_path = work / f"{tag}.job.json", work / f"{tag}.result.json", work / f"{tag}.log"
    job_path.write_text(json.dumps(job))
    with log_path.open("w") as log:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(SIDES), kind, str(job_path), str(result_path)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
        monitor = TreeMemory(proc.pid)
        monitor.start()
        code = proc.wait()
        monitor.stop()
    if code != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"{kind} run failed (exit {code}); last lines of {log_path}:\n" + "\n".join(tail))
    result = json.loads(result_path.read_text())
    result.update(peak_rss_mb=monitor.peak_rss / 2**20, peak_pss_mb=monitor.peak_pss / 2**20,
                  wall_s=time.perf_counter() - started)
    return result


# -- one workload -----------------------------------------------------------------------------------------------
def measure(w: Workload, args: argparse.Namespace, root: Path, env: dict[str, str]) -> dict[str, Any]:
    work = root / w.name
    work.mkdir(parents=True, exist_ok=True)
    base = {"workload": asdict(w), "work_dir": str(work), "steps": args.steps, "threads": args.threads,
            "qwen_layers": args.qwen_layers}
    say(args, f"{w.name}: building the model and the prompts")
    assets = run_side("prepare", {**base, "tag": "prepare"}, work, env)
    base["assets"] = {k: assets[k] for k in ("model_dir", "records", "n_records", "order")}
    out: dict[str, Any] = {"workload": asdict(w), "sides": {}}
    if args.check:
        say(args, f"{w.name}: checking rlstruct's fast paths against its plain ones")
        out["check"] = run_side("check", {**base, "tag": "check"}, work, env)
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in args.sides}
    for round_ in range(args.rounds):
        order = args.sides[round_ % len(args.sides):] + args.sides[: round_ % len(args.sides)]  # alternate
        for side in order:
            tag = f"{side}-r{round_}"
            say(args, f"{w.name}: round {round_ + 1}/{args.rounds}, {side}")
            job = {**base, "tag": tag, "run_dir": str(work / tag)}
            if side.startswith("rlstruct"):
                job["options"] = {**w.rlstruct_options, **(PLAIN_OPTIONS if side == "rlstruct-plain" else {})}
                runs[side].append(run_side("rlstruct", job, work, env))
            else:
                job["gradient_checkpointing"] = side == "trl"
                runs[side].append(run_side("trl", job, work, env))
    for side, results in runs.items():
        out["sides"][side] = summarise(results, w.device)
    out["ratios"] = ratios(out["sides"], w.device)
    return out


def summarise(results: list[dict[str, Any]], device: str) -> dict[str, Any]:
    """Medians over every measured step of every run of one side (each run's first step dropped)."""
    steps = [s for r in results for s in r["steps"][1:]]
    with_tokens = [s for s in steps if s.get("tokens")]
    summary = {
        "runs": len(results),
        "measured_steps": len(steps),
        "s_per_step": statistics.median(s["s"] for s in steps) if steps else None,
        "completion_tokens_per_s": (statistics.median(s["tokens"] / s["s"] for s in with_tokens)
                                    if with_tokens else None),
        "completion_tokens_per_step": statistics.median(s["tokens"] for s in with_tokens) if with_tokens else None,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
        "peak_pss_mb": max(r["peak_pss_mb"] for r in results),
        "peak_cuda_mb": max((r["peak_cuda_mb"] or 0) for r in results) if device == "cuda" else None,
    }
    phases = [s["phases"] for s in steps if s.get("phases")]
    if phases:
        summary["phases_s"] = {k: statistics.median(p[k] or 0.0 for p in phases) for k in phases[0]}
        summary["generation_path"] = steps[0].get("generation")
    return summary


def ratios(sides: dict[str, dict[str, Any]], device: str) -> dict[str, Any]:
    """rlstruct against the faster TRL run (speed) and the leaner one (memory)."""
    trl = [sides[s] for s in ("trl", "trl-no-gc") if s in sides]
    ours = sides.get("rlstruct")
    if not trl or not ours:
        return {}
    memory = "peak_cuda_mb" if device == "cuda" else "peak_rss_mb"
    fastest = max((t["completion_tokens_per_s"] or 0.0) for t in trl)
    leanest = min(t[memory] for t in trl)
    out = {
        "speed_vs_faster_trl": ours["completion_tokens_per_s"] / fastest if fastest else None,
        "step_time_vs_faster_trl": min(t["s_per_step"] for t in trl) / ours["s_per_step"],
        "memory_vs_leaner_trl": ours[memory] / leanest if leanest else None,
        "memory_metric": memory,
    }
    if device != "cuda":
        out["pss_vs_leaner_trl"] = ours["peak_pss_mb"] / min(t["peak_pss_mb"] for t in trl)
    return out


# -- reporting ---------------------------------------------------------------------------------------------------
def machine(args: argparse.Namespace) -> dict[str, Any]:
    import importlib.metadata as md

    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "logical_cpus": os.cpu_count(), "threads": args.threads}
    try:
        info["cpus_allowed"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next(row.split(":", 1)[1].strip() for row in fh if row.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    for package in ("torch", "transformers", "trl", "peft"):
        try:
            info[package] = md.version(package)
        except md.PackageNotFoundError:
            info[package] = None
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def cuda_device() -> str | None:
    code = "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
    return out or None


def table(report: dict[str, Any]) -> str:
    lines = [f"machine: {report['machine'].get('cpu')} ({report['machine'].get('cpus_allowed')} CPUs allowed, "
             f"{report['machine']['threads']} threads), {report['machine'].get('gpu') or 'no GPU'}; torch "
             f"{report['machine']['torch']}, transformers {report['machine']['transformers']}, trl "
             f"{report['machine']['trl']}; load average {report['machine'].get('load_average_at_start')} -> "
             f"{report['machine'].get('load_average_at_end')}"]
    for w in report["workloads"]:
        wl = w["workload"]
        lines += ["", f"{wl['name']}: {wl['description']} (P={wl['prompts']}, G={wl['group']}, "
                  f"{wl['max_new_tokens']} new tokens, {wl['dtype']}, {wl['device']})"]
        if w.get("skipped"):
            lines.append(f"  skipped: {w['skipped']}")
            continue
        options = {**wl["rlstruct_options"]}
        lines.append(f"  rlstruct configuration: generation fast, shared prompt, {options or 'defaults otherwise'}")
        memory = "peak CUDA MB" if wl["device"] == "cuda" else "peak RSS MB"
        lines.append(f"  {'side':<16}{'s/step':>9}{'tokens/s':>10}{'tok/step':>10}{memory:>14}{'PSS MB':>9}"
                     f"{'steps':>7}")
        for side, s in w["sides"].items():
            mem = s["peak_cuda_mb"] if wl["device"] == "cuda" else s["peak_rss_mb"]
            lines.append(f"  {side:<16}{_f(s['s_per_step'], 3):>9}{_f(s['completion_tokens_per_s'], 0):>10}"
                         f"{_f(s['completion_tokens_per_step'], 0):>10}{_f(mem, 0):>14}{_f(s['peak_pss_mb'], 0):>9}"
                         f"{s['measured_steps']:>7}")
        r = w.get("ratios") or {}
        if r:
            lines.append(f"  rlstruct vs the faster TRL run: {_f(r['speed_vs_faster_trl'], 2)}x tokens/s "
                         f"({_f(r['step_time_vs_faster_trl'], 2)}x step time); vs the leaner TRL run: "
                         f"{_f(r['memory_vs_leaner_trl'], 2)}x {r['memory_metric']}"
                         + (f", {_f(r['pss_vs_leaner_trl'], 2)}x PSS" if "pss_vs_leaner_trl" in r else ""))
        if "check" in w:
            c = w["check"]
            lines.append(f"  check (fast vs plain paths): {'passed' if c['passed'] else 'FAILED'}: greedy identical "
                         f"{c['greedy_identical']}, sampled log-prob max diff {c['sampled_logprob_max_diff']:.1e}, "
                         f"update loss {c['update_loss_plain']:.6g} vs {c['update_loss_shared']:.6g}, gradient "
                         f"relative diff {c['update_grad_rel_diff']:.1e}")
    return "\n".join(lines)


def profile_table(report: dict[str, Any]) -> str:
    """Where one rlstruct step's time goes (medians over measured steps)."""
    names = {"prefill_s": "generation: prefill", "decode_s": "generation: decode", "score_s": "scoring",
             "old_logp_s": "old-policy log-probs", "ref_logp_s": "reference log-probs",
             "fwd_bwd_s": "forward/backward", "optim_s": "optimiser"}
    lines = ["", "Profile of one rlstruct step (median seconds over measured steps)"]
    for w in report["workloads"]:
        for side in ("rlstruct", "rlstruct-plain"):
            s = w.get("sides", {}).get(side)
            if not s or "phases_s" not in s:
                continue
            lines.append(f"  {w['workload']['name']} {side} (generation path: {s.get('generation_path')}), "
                         f"step {_f(s['s_per_step'], 3)} s")
            accounted = 0.0
            for key, label in names.items():
                value = s["phases_s"].get(key) or 0.0
                accounted += value
                share = 100 * value / s["s_per_step"] if s["s_per_step"] else 0
                lines.append(f"    {label:<24}{value:>9.3f}{share:>7.1f} %")
            other = max(0.0, s["s_per_step"] - accounted)
            lines.append(f"    {'other':<24}{other:>9.3f}{100 * other / s['s_per_step']:>7.1f} %")
    return "\n".join(lines)


def _f(value, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"[vs_trl] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default=None,
                    help="comma-separated, from W1..W5 (default: W1,W2,W3, plus W4 when CUDA is available)")
    ap.add_argument("--steps", type=int, default=5, help="measured steps per run, after one warm-up step (default 5)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; each runs every side once (default 2)")
    ap.add_argument("--sides", default="rlstruct,trl,trl-no-gc",
                    help=f"comma-separated, from {', '.join(SIDE_NAMES)} (rlstruct-plain: rlstruct's plain "
                         "generation and per-row update, to show what the fast paths change)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run (default: the CPUs allowed)")
    ap.add_argument("--profile", action="store_true", help="print where one rlstruct step's time goes")
    ap.add_argument("--no-check", dest="check", action="store_false",
                    help="skip the equivalence check of rlstruct's fast paths against its plain ones")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE", help="JSON to FILE (or stdout without FILE)")
    ap.add_argument("--work-dir", help="keep models, configs and logs here (default: a temporary directory)")
    ap.add_argument("--qwen-layers", type=int, default=None,
                    help="layers of the Qwen2.5-0.5B-shaped model (default 24; fewer only to smoke-test W4/W5)")
    ap.add_argument("--rlstruct-set", action="append", default=[], metavar="KEY=VALUE",
                    help="an rlstruct engine option for every workload's rlstruct run (grpo.* or model.* keys, value "
                         "read as JSON), e.g. grpo.decode_threads=1; repeatable; named in the report")
    ap.add_argument("--max-new-tokens", type=int, default=None,
                    help="override every workload's completion cap (smoke tests only: the figures then describe "
                         "another workload)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.rounds < 1:
        ap.error("--steps and --rounds must be >= 1")
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = [s for s in args.sides if s not in SIDE_NAMES]
    if unknown:
        ap.error(f"--sides: unknown {', '.join(unknown)} (known: {', '.join(SIDE_NAMES)})")
    if args.threads is None:
        args.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    extra_options = {}
    for item in args.rlstruct_set:
        key, sep, raw = item.partition("=")
        if not sep or not key.startswith(("grpo.", "model.")):
            ap.error(f"--rlstruct-set {item!r}: expected grpo.KEY=VALUE or model.KEY=VALUE")
        try:
            extra_options[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            extra_options[key.strip()] = raw
    gpu = cuda_device()
    names = args.workloads.split(",") if args.workloads else ["W1", "W2", "W3"] + (["W4"] if gpu else [])
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        ap.error(f"--workloads: unknown {', '.join(unknown)} (known: {', '.join(WORKLOADS)})")
    try:
        import psutil  # noqa: F401
        import trl  # noqa: F401
    except ImportError as exc:
        ap.error(f"{exc.name} is missing: pip install -e '.[bench]'")

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    report: dict[str, Any] = {"machine": {**machine(args), "gpu": gpu}, "steps": args.steps, "rounds": args.rounds,
                              "command": " ".join([Path(sys.argv[0]).name,
                                                   *(argv if argv is not None else sys.argv[1:])]),
                              "workloads": []}
    with tempfile.TemporaryDirectory(prefix="vs_trl-") as tmp:
        root = Path(args.work_dir) if args.work_dir else Path(tmp)
        for name in names:
            w = WORKLOADS[name]
            if args.max_new_tokens:
                w = Workload(**{**asdict(w), "max_new_tokens": args.max_new_tokens})
            if extra_options:
                w = Workload(**{**asdict(w), "rlstruct_options": {**w.rlstruct_options, **extra_options}})
            if w.device == "cuda" and not gpu:
                report["workloads"].append({"workload": asdict(w), "skipped": "no CUDA device"})
                continue
            report["workloads"].append(measure(w, args, root.resolve(), env))
    if hasattr(os, "getloadavg"):
        report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    text = table(report) + (("\n" + profile_table(report)) if args.profile else "")
    if args.json == "-":
        print(json.dumps(report, indent=2))
    else:
        print(text)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
    failed = [w["workload"]["name"] for w in report["workloads"] if w.get("check") and not w["check"]["passed"]]
    if failed:
        print(f"equivalence check FAILED for {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
