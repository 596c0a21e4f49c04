#!/usr/bin/env bash
# A 3-task mixture (json-recipes, gsm8k-json, xml-records) against single-task runs of the same length,
# all from one tiny base model; held-out (test split) per-task figures, greedy and sampled, as fixed in
# tasks/mixture-tiny.toml. Results: runs/cmp/*.json; `python benchmarks/mixture_table.py runs/cmp` prints the per-task table.
#   bash benchmarks/mixture_vs_single.sh            (about 40 minutes on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
RL=${RL:-.venv/bin/rlstruct}
CFG=tasks/mixture-tiny.toml
OUT=${OUT:-runs/cmp}
rm -rf "$OUT" .tiny/mixture-tiny && mkdir -p "$OUT"
$RL tiny-model .tiny/mixture-tiny --task json-recipes --task gsm8k-json --task xml-records
evals() {  # MODEL NAME [--task T]
  $RL eval --model "$1" --config $CFG "${@:3}" --json > "$OUT/$2.greedy.json"
  $RL eval --model "$1" --config $CFG "${@:3}" --sample --json > "$OUT/$2.sampled.json"
}
$RL sft $CFG --output-dir "$OUT/mix-sft"
evals "$OUT/mix-sft" mix-sft
$RL train $CFG --set "model.name_or_path=\"$OUT/mix-sft\"" --set run.eval_at_end=false --set run.quiet=true --output-dir "$OUT/mix"
evals "$OUT/mix/final" mix
# Single-task runs: same base model, SFT steps and GRPO shape (P=6, G=8, 60 steps) as the mixture.
G=(--set grpo.steps=60 --set grpo.prompts_per_step=6 --set grpo.group_size=8 --set grpo.max_new_tokens=560
   --set grpo.max_prompt_tokens=1152 --set grpo.beta=0.04 --set grpo.learning_rate=1e-4 --set grpo.warmup_steps=2
   --set grpo.micro_batch_size=16 --set run.eval_at_end=false --set run.quiet=true)
for T in json-recipes gsm8k-json xml-records; do
  $RL sft tasks/$T-tiny.toml --set model.name_or_path=\".tiny/mixture-tiny\" --set sft.steps=300 --set sft.batch_size=16 --output-dir "$OUT/$T-sft"
  $RL train tasks/$T-tiny.toml --set "model.name_or_path=\"$OUT/$T-sft\"" "${G[@]}" --output-dir "$OUT/$T"
  evals "$OUT/$T-sft" "$T-sft" --task $T
  evals "$OUT/$T/final" "$T" --task $T
done
