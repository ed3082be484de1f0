"""benchmarks/faults.py end to end (slow): the real CLI, a real misbehaving HTTP server, real cache
faults and kill -9 lose no document, and a resumed output equals an uninterrupted one."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

# scenarios whose fault the same command recovers from once it is healed
RECOVERED = ["refused", "http500", "garbage", "truncated", "outage", "kill9", "cache_corrupt", "cache_concurrent",
             "cache_readonly"]


def test_faults_benchmark_loses_nothing(tmp_path):
    scenarios = RECOVERED + ["cache_folder", "cache_full", "poison"]
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "faults.py"), "--docs", "16",
                          "--only", ",".join(scenarios), "--keep", str(tmp_path)],
                         capture_output=True, text=True, timeout=900, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {r["scenario"]: r for r in map(json.loads, run.stdout.splitlines())}
    assert set(scenarios) <= set(rows)
    for name in scenarios:
        assert rows[name]["lost"] == 0, rows[name]
    for name in RECOVERED:
        assert rows[name]["equal"] and rows[name]["runs_to_complete"] is not None, rows[name]
    assert rows["refused"]["exit_code"] == 1 and rows["refused"]["flagged"] == 16
    assert rows["cache_folder"]["exit_code"] == 2 and rows["cache_folder"]["folder_untouched"]
    assert rows["cache_full"]["complete"] == 16 and rows["cache_full"]["equal"]
    assert rows["poison"]["poison_status"] == "skipped" and rows["poison"]["complete"] == 15
