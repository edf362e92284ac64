"""The package works without ROS: its ROS tests then skip, each saying why, and none fails.

A user who installs only the Python part (``pip install``, no ROS) runs the same test suite;
so does the lent GPU machine, which has no ROS. Here ``rclpy`` is hidden from a nested pytest
run of ``test/ros`` by a package of that name that raises ImportError, found first on the path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ros_tests_skip_cleanly_without_rclpy(tmp_path):
    hidden = tmp_path / "hidden" / "rclpy"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("rclpy hidden by test_without_ros")\n')
    env = {k: v for k, v in os.environ.items() if k != "YOLACT_ROS_REQUIRE_ROS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hidden.parent), str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "test/ros"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    summary = out.strip().splitlines()[-1]
    assert "skipped" in summary and "failed" not in summary and "error" not in summary, summary
    assert "rclpy not importable (rclpy hidden by test_without_ros)" in out
