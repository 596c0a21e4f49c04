"""Seeds make runs reproducible: every built-in task's synthetic data is byte-identical across
processes, whatever Python's string-hash randomisation (PYTHONHASHSEED) does to set order."""

import os
import subprocess
import sys

import pytest

from rlstruct.plugins import PluginManager

BUILTIN = ["function-calls", "gsm8k-json", "json-recipes", "json-schema", "xml-records"]


def _data(task: str, hash_seed: str, split: str) -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    cmd = [sys.executable, "-m", "rlstruct.cli", "data", "--task", task, "--limit", "25", "--seed", "7", "--split", split]
    return subprocess.run(cmd, env=env, capture_output=True, check=True).stdout


@pytest.mark.parametrize("task", BUILTIN)
def test_synthetic_records_do_not_depend_on_the_hash_seed(task):
    assert task in PluginManager().tasks
    for split in ("train", "test"):
        outputs = {_data(task, seed, split) for seed in ("1", "2", "3")}
        assert len(outputs) == 1, f"{task} {split}: records differ between processes"
        assert outputs.pop().count(b"\n") == 25
