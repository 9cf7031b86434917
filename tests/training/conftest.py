"""Torch tests run beside other work: two threads, restored afterwards."""

import pytest


@pytest.fixture
def torch_threads():
    torch = pytest.importorskip("torch", reason="the train extra (torch) is not installed")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
