"""The reward-throughput benchmark keeps running (it is a script, so nothing else would notice it rot)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_reward_throughput_benchmark_prints_every_task(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "reward_throughput.py"), "--n", "40", "--json", str(out)]
    subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300)
    data = json.loads(out.read_text())
    text = json.dumps(data)
    for task in ("json-recipes", "json-schema", "gsm8k-json", "xml-records", "function-calls"):
        assert task in text
