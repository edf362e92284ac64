"""Fixtures shared by the ROS-free tests."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Small tensors: extra threads only add overhead on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def _private_model_cache(tmp_path_factory):
    """The OpenVINO model cache of this test session (also inherited by node processes), so tests
    neither read a user's cache nor leave files in it."""
    import os

    old = os.environ.get("YOLACT_ROS_CACHE_DIR")
    os.environ["YOLACT_ROS_CACHE_DIR"] = str(tmp_path_factory.mktemp("model_cache"))
    yield
    if old is None:
        os.environ.pop("YOLACT_ROS_CACHE_DIR", None)
    else:
        os.environ["YOLACT_ROS_CACHE_DIR"] = old
