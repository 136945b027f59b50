import pytest
import torch

from problems.bevfusion.mini.checkpoint import build_model_from_config
from problems.bevfusion.mini.dataset import SyntheticScenes, batches


@pytest.fixture(scope="session")
def untrained_model():
    torch.manual_seed(0)
    return build_model_from_config().eval()


@pytest.fixture(scope="session")
def test_batch():
    return batches(SyntheticScenes("test", 4), 4, 1)[0]
