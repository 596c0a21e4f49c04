#!/usr/bin/env bash
# Set up a virtual environment (CPU torch from this machine's local wheel) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0          # CPU build; pyproject keeps a range
.venv/bin/python -m pip install -q -e '.[test,bench,tensorboard]'
# The constrained-decoding extra without its GPU kernel dependency (triton): CPU tests need only the grammar engine.
.venv/bin/python -m pip install -q --no-deps 'xgrammar>=0.2' 'apache-tvm-ffi>=0.1.11'
.venv/bin/python -m pip install -q pydantic
.venv/bin/ruff check core plugins tests benchmarks
.venv/bin/python -m pytest -q "$@"
