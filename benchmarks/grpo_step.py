"""Time rlstruct's own GRPO steps on this machine (CPU or CUDA) and print where the time goes.

Builds a tiny Qwen2-shaped model locally (or uses --model), runs a few warm-up steps and then
--steps measured steps of the engine on a task, and prints one JSON line: completion tokens per
second, seconds per step split into generation / scoring / update, and peak memory.

    python benchmarks/grpo_step.py                       # json-recipes, tiny model, auto device
    python benchmarks/grpo_step.py --device cuda --prompts 16 --group 8 --max-new-tokens 256

This measures the engine alone; benchmarks/vs_trl.py compares it with TRL's GRPOTrainer at equal settings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from rlstruct.config import Config, EvalConfig, GRPOConfig, ModelConfig, RewardConfig, RunConfig, TaskConfig
from rlstruct.data import load_records
from rlstruct.engine.grpo import train
from rlstruct.plugins import PluginManager
from rlstruct.reward import RewardSpec
from rlstruct.tiny import build_tiny_model, config_for_width, default_corpus


def tiny_model_for(task, out: Path, hidden: int, layers: int) -> Path:
    corpus = default_corpus()
    for record in load_records(task, "synthetic", "train", 300, 0):
        corpus.extend(m["content"] for m in task.build_prompt(record).messages)
        corpus.append(task.reference_completion(record) or "")
    return build_tiny_model(out, corpus, config_for_width(hidden, layers))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="json-recipes")
    ap.add_argument("--model", help="model directory (default: build a tiny one)")
    ap.add_argument("--hidden", type=int, default=128, help="tiny model width")
    ap.add_argument("--layers", type=int, default=2, help="tiny model depth")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step")
    ap.add_argument("--group", type=int, default=8, help="completions per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--micro-batch", type=int, default=64)
    ap.add_argument("--lora", action="store_true", help="train a LoRA adapter instead of all weights")
    ap.add_argument("--generation", default="fast", choices=["fast", "plain"], help="grpo.generation (default fast)")
    ap.add_argument("--no-shared-prompt", dest="shared_prompt", action="store_false",
                    help="grpo.shared_prompt = false: encode every row's prompt in the update")
    ap.add_argument("--decode-threads", type=int, default=0, help="grpo.decode_threads (default 0: unchanged)")
    ap.add_argument("--warmup", type=int, default=2, help="steps left out of the figures")
    ap.add_argument("--steps", type=int, default=5, help="measured steps")
    args = ap.parse_args(argv)

    task = PluginManager().task(args.task)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(tiny_model_for(task, Path(tmp) / "model", args.hidden, args.layers))
        total = args.warmup + args.steps
        cfg = Config(
            task=TaskConfig(name=args.task, train_limit=max(64, args.prompts * total)),
            reward=RewardConfig(workers=2),
            model=ModelConfig(name_or_path=model, lora=args.lora),
            grpo=GRPOConfig(steps=total, prompts_per_step=args.prompts, group_size=args.group,
                            max_new_tokens=args.max_new_tokens, micro_batch_size=args.micro_batch,
                            generation=args.generation, shared_prompt=args.shared_prompt,
                            decode_threads=args.decode_threads),
            eval=EvalConfig(),
            run=RunConfig(output_dir=str(Path(tmp) / "run"), device=args.device, save_every=10**6,
                          quiet=True, log_every=10**6, eval_at_end=False),
        )
        train(cfg, task, RewardSpec.build(task, {}), Path(cfg.run.output_dir), progress=False)
        lines = [json.loads(line) for line in (Path(cfg.run.output_dir) / "metrics.jsonl").read_text().splitlines()]
    measured = lines[args.warmup:]
    mean = lambda key: statistics.fmean(row[key] for row in measured)  # noqa: E731
    step_s = mean("gen_s") + mean("score_s") + mean("update_s")
    result = {
        "task": args.task,
        "device": lines[0]["device"],
        "completions_per_step": args.prompts * args.group,
        "completion_tokens_per_s": mean("tokens_per_s"),
        "step_s": step_s,
        "gen_s": mean("gen_s"),
        "score_s": mean("score_s"),
        "update_s": mean("update_s"),
        "completion_len_mean": mean("completion_len_mean"),
        "peak_mem_mb": max(row["peak_mem_mb"] for row in measured),
        "measured_steps": len(measured),
        "generation": measured[0].get("generation"),
        "phases_s": {k: mean(k) for k in ("prefill_s", "decode_s", "old_logp_s", "ref_logp_s", "fwd_bwd_s", "optim_s")
                     if all(row.get(k) is not None for row in measured)},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
