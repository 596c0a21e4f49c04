"""benchmarks/vs_trl.py keeps running end to end (a script: nothing else would notice it rot).

The figures of so small a run mean nothing; what is checked is that both trainers ran the same number of
steps on the same prompts, the report has every field the docs describe, and the fast-path check passed.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_vs_trl_runs_both_trainers_and_reports_ratios(tmp_path):
    pytest.importorskip("trl")
    pytest.importorskip("psutil")
    out = tmp_path / "report.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "vs_trl.py"), "--workloads", "W1", "--steps", "1", "--rounds", "1",
           "--max-new-tokens", "8", "--sides", "rlstruct,trl", "--threads", "1", "--profile", "--quiet",
           "--json", str(out), "--work-dir", str(tmp_path / "work")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rlstruct vs the faster TRL run" in result.stdout and "Profile of one rlstruct step" in result.stdout
    report = json.loads(out.read_text())
    assert report["machine"]["trl"] and report["machine"]["threads"] == 1
    (w1,) = report["workloads"]
    assert w1["check"]["passed"] and w1["check"]["greedy_identical"]
    for side in ("rlstruct", "trl"):
        s = w1["sides"][side]
        assert s["measured_steps"] == 1 and s["s_per_step"] > 0 and s["peak_rss_mb"] > 100
        assert 0 < s["completion_tokens_per_step"] <= 4 * 8 * 8  # P x G x max new tokens
    assert w1["sides"]["rlstruct"]["generation_path"] == "fast"
    assert set(w1["sides"]["rlstruct"]["phases_s"]) >= {"prefill_s", "decode_s", "fwd_bwd_s", "optim_s"}
    ratios = w1["ratios"]
    assert ratios["speed_vs_faster_trl"] > 0 and ratios["memory_vs_leaner_trl"] > 0
    assert ratios["memory_metric"] == "peak_rss_mb"
