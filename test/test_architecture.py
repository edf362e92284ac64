"""The architecture contracts of .importlinter (layers, no ROS below the ROS face, no import
cycles) hold for the source tree, and the check really fails on violations planted in a copy."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / ".importlinter"
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(source_root: Path) -> subprocess.CompletedProcess:
    # Only the given tree on the path: never the built workspace's copy of the package.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH")}
    env["PYTHONPATH"] = str(source_root)
    return subprocess.run(
        [str(LINT), "--no-cache", str(CONFIG)], cwd=source_root, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def lint_available():
    if not LINT.is_file():
        pytest.fail(f"{LINT} not found: import-linter is in requirements.txt (bash scripts/setup_env.sh)")


def test_contracts_hold(lint_available):
    res = _lint(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "5 kept, 0 broken" in res.stdout, res.stdout


def _copy_package(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    shutil.copytree(REPO / "yolact_ros", root / "yolact_ros", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _append(path: Path, code: str) -> None:
    path.write_text(path.read_text() + "\n\n" + code + "\n")


def test_fails_on_an_upward_import_inside_a_function(lint_available, tmp_path):
    root = _copy_package(tmp_path)
    _append(
        root / "yolact_ros/model/boxes.py", "def _planted():\n    from ..inference import defaults\n    return defaults"
    )
    res = _lint(root)
    assert res.returncode != 0
    assert "Layers only import downwards (ROS face > apps > data, inference > model) BROKEN" in res.stdout, res.stdout
    assert "yolact_ros.model.boxes -> yolact_ros.inference.defaults" in res.stdout, res.stdout


def test_fails_when_the_product_imports_test_support(lint_available, tmp_path):
    root = _copy_package(tmp_path)
    _append(root / "yolact_ros/cli/infer.py", "def _planted():\n    from ..testing import rgbd\n    return rgbd")
    _append(
        root / "yolact_ros/data/synth.py", "def _planted():\n    from ..inference import defaults\n    return defaults"
    )
    res = _lint(root)
    assert res.returncode != 0
    assert (
        "The product never imports the test support" in res.stdout
        and "yolact_ros.cli.infer -> yolact_ros.testing.rgbd" in res.stdout
    )
    assert "yolact_ros.data.synth -> yolact_ros.inference.defaults" in res.stdout, (
        res.stdout
    )  # data and inference: independent


def test_fails_on_rclpy_outside_the_ros_face_and_on_a_cycle(lint_available, tmp_path):
    root = _copy_package(tmp_path)
    _append(root / "yolact_ros/inference/visualize.py", "def _planted():\n    import rclpy\n    return rclpy")
    _append(root / "yolact_ros/model/config.py", "def _planted():\n    from .yolact import Yolact\n    return Yolact")
    res = _lint(root)
    assert res.returncode != 0
    assert "Only yolact_ros.ros imports rclpy, message packages or launch BROKEN" in res.stdout, res.stdout
    assert "No import cycles between sibling packages or modules, at any depth BROKEN" in res.stdout, res.stdout


def test_generated_messages_only_in_the_ros_face():
    """``yolact_ros.msg`` is generated at build time, so import-linter cannot see it: check by AST."""
    offenders = []
    for path in (REPO / "yolact_ros").rglob("*.py"):
        if path.relative_to(REPO / "yolact_ros").parts[0] == "ros":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [("." * node.level) + node.module]
            if any(n.startswith("yolact_ros.msg") or n.lstrip(".") == "msg" or n.endswith(".msg") for n in names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders
