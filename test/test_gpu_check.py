"""scripts/gpu_check.sh --dry-run: the device check's steps on the CPU, so that the command
run on a lent GPU (minutes of device time) is known to work before it is spent."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", str(out), "--dry-run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    summary = (out / "summary.txt").read_text() if (out / "summary.txt").exists() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr + summary + (out / "cuda_tests.txt").read_text()
    files = sorted(p.name for p in out.iterdir())
    assert files == ["bench_gpu.json", "bench_gpu.txt", "cuda_tests.txt", "cuda_tests.xml", "env.txt", "summary.txt"]
    assert "failed" not in (out / "cuda_tests.txt").read_text()
    rows = json.loads((out / "bench_gpu.json").read_text())
    assert rows and all(r["total_ms"] > 0 and r["instances"] >= 0 for r in rows)
    assert {r["batch"] for r in rows} == {1, 2}
    assert "cuda_tests: exit 0" in summary and "bench_gpu: exit 0" in summary
