#!/usr/bin/env bash
# The main job, offline on CPU: build a tiny Qwen2-shaped model with a locally trained tokenizer,
# warm-start it with SFT on the task's reference completions, train it with GRPO, evaluate it.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-tasks/json-recipes-tiny.toml}
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e .
RL=.venv/bin/rlstruct
TASK=$(.venv/bin/python -c "import sys; from rlstruct.config import load_config; print(load_config(sys.argv[1]).task.name)" "$CONFIG")
OUT=$(.venv/bin/python -c "import sys; from rlstruct.config import load_config; print(load_config(sys.argv[1]).run.output_dir)" "$CONFIG")
if [ -e "$OUT" ] || [ -e "$OUT-sft" ]; then  # the demo starts over; `rlstruct train` itself never overwrites a run
  echo "main.sh: removing $OUT and $OUT-sft from an earlier main.sh run"
  rm -rf "$OUT" "$OUT-sft"
fi
$RL tiny-model ".tiny/$TASK" --task "$TASK"
$RL sft "$CONFIG" --set "model.name_or_path=\".tiny/$TASK\"" --output-dir "$OUT-sft"
echo "== SFT baseline, greedy, then sampled (the [eval] protocol of $CONFIG) =="
$RL eval --model "$OUT-sft" --task "$TASK" --config "$CONFIG"
$RL eval --model "$OUT-sft" --task "$TASK" --config "$CONFIG" --sample
echo "== GRPO from the SFT model (held-out greedy evaluation at the end) =="
$RL train "$CONFIG" --set "model.name_or_path=\"$OUT-sft\"" --set run.quiet=true
echo "== after GRPO, sampled =="
$RL eval --model "$OUT/final" --task "$TASK" --config "$CONFIG" --sample
