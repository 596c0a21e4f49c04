#!/usr/bin/env bash
# The main job, offline on CPU: `rlstruct demo` builds a tiny Qwen2-shaped model with a locally trained
# tokenizer, warm-starts it with SFT, trains it with GRPO, evaluates both checkpoints on held-out prompts and
# writes runs/demo-<task>/report.md (table, protocol, training-dynamics plot) and report.json.
#   bash scripts/main.sh                          # json-recipes, the default
#   bash scripts/main.sh --task gsm8k-json        # any option of `rlstruct demo --help`
# A rerun replaces the earlier demo's directory (and only a directory the demo wrote: --overwrite is guarded).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0          # CPU build; pyproject keeps a range
.venv/bin/python -m pip install -q -e '.[plot]'          # the plot extra: matplotlib, for training_dynamics.png
exec .venv/bin/rlstruct demo --overwrite "$@"
