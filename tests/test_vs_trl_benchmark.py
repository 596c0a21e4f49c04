"""benchmarks/vs_trl.py keeps running end to end (a script: nothing else would notice it rot).

The figures of so small a run mean nothing; what is checked is that both trainers ran the same number of
steps on the same prompts, the report has every field the docs describe, and the fast-path check passed.
"""

import json
import subprocess
import sys
import time
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


def test_memory_sampler_reads_pss_rarely_and_rss_often(monkeypatch):
    # Reading PSS walks the measured process's page tables under its memory-map lock: every 50 ms it slowed the
    # runs being measured (docs/benchmarks.md), so the sampler reads it once per pss_every_s and RSS every tick.
    pytest.importorskip("psutil")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import vs_trl
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    pss_reads = []
    monkeypatch.setattr(vs_trl, "_pss", lambda pid: pss_reads.append(pid) or 4096)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"])
    try:
        monitor = vs_trl.TreeMemory(child.pid, every_s=0.01, pss_every_s=0.5)
        monitor.start()
        time.sleep(1.0)
        monitor.stop()
    finally:
        child.kill()
        child.wait()
    assert 1 <= len(pss_reads) <= 3, pss_reads  # ~100 ticks in a second, PSS read at ticks 0 and 50
    assert monitor.peak_rss > 0 and monitor.peak_pss == 4096
