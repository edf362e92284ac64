"""Fixtures of the real-runtime ROS tests.

Without a ROS runtime (rclpy, the built workspace with yolact_ros.msg and vision_msgs) these
tests skip with the reason; with ``YOLACT_ROS_REQUIRE_ROS=1`` (CI, ``make test``) they fail.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ros_helpers  # noqa: E402

from yolact_ros.ros import node_process  # noqa: E402

# Isolate this test session from other ROS processes on the machine before any rclpy init.
os.environ["ROS_DOMAIN_ID"] = os.environ.get("YOLACT_ROS_TEST_DOMAIN_ID") or str(random.randint(1, 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
if not (os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE") or os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")):
    # scripts/ros_env.sh sets the one its Fast DDS reads; outside it, Jazzy's name
    os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(ros_helpers.REPO / "config" / "fastdds_shm.xml")


@pytest.fixture(scope="session")
def ros_runtime():
    """The node executable's path; skip (or fail under YOLACT_ROS_REQUIRE_ROS=1) without ROS."""
    problem = node_process.ros_problem()
    if problem:
        if os.environ.get("YOLACT_ROS_REQUIRE_ROS") == "1":
            pytest.fail(f"ROS runtime required (YOLACT_ROS_REQUIRE_ROS=1) but unavailable: {problem}")
        pytest.skip(f"no ROS runtime: {problem} (bash scripts/build_ws.sh && source scripts/ros_env.sh)")
    return node_process.node_executable()


@pytest.fixture(scope="session")
def ros_log_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ros_log")
    os.environ["ROS_LOG_DIR"] = str(d)
    return d


@pytest.fixture(scope="session")
def small_weights(tmp_path_factory, ros_runtime):
    """A self-describing checkpoint of a small model (ResNet-50 YOLACT at 256 px, reference
    weights): the node needs only ``weights``."""
    import torch

    from yolact_ros.model import OFFICIAL_CONFIGS, build_yolact
    from yolact_ros.model.checkpoint import save_checkpoint
    from yolact_ros.testing.reference_weights import apply_golden_weights

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("weights") / "test_small.pth"
    model = build_yolact(OFFICIAL_CONFIGS["yolact_resnet50"].replace(name="test_small", max_size=256))
    apply_golden_weights(model)
    save_checkpoint(model, path)
    return path


@pytest.fixture(scope="session")
def reference_segmenter(small_weights):
    """The Segmenter run directly, to compare the node's outputs with."""
    import torch

    from yolact_ros.segmenter import Segmenter

    torch.set_num_threads(1)
    return Segmenter(weights=small_weights, device="cpu")


@pytest.fixture(scope="session", autouse=True)
def _remove_leaked_shared_memory():
    """Fast DDS shared-memory segments left in /dev/shm by the node processes these tests end
    at once (signals, os._exit): about 20 MB each, several GB over the suite, never freed by the
    OS. Removed at the end of the session, only those that appeared during it."""
    shm = Path("/dev/shm")
    before = set(os.listdir(shm)) if shm.is_dir() else set()
    yield
    if not shm.is_dir():
        return
    for name in set(os.listdir(shm)) - before:
        if "fastrtps" in name or "fastdds" in name:
            try:
                (shm / name).unlink()
            except OSError:
                pass
