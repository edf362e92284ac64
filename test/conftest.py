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
