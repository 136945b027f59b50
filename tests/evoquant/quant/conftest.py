import pytest
import torch
from torch import nn

from evoquant.config import AlphaConfig, QuantConfig
from evoquant.quant.layers import find_layers
from evoquant.quant.matmul import QuantMatMul
from evoquant.quant.table import build_quant_table


class TinyAttentionNet(nn.Module):
    """Conv stem, a linear projection, one attention product and a head: every layer kind."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)
        )
        self.attn = nn.ModuleDict({"q": nn.Linear(8, 8), "q_k_matmul": QuantMatMul()})
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        tokens = self.stem(x).flatten(2).transpose(1, 2)
        q = self.attn["q"](tokens)
        weights = self.attn["q_k_matmul"](q, q.transpose(1, 2)).softmax(-1)
        return self.head((weights @ tokens).mean(1))


def run(model, batch):
    return model(batch)


@pytest.fixture
def tiny_run():
    return run


def make_tiny_model() -> TinyAttentionNet:
    torch.manual_seed(0)
    return TinyAttentionNet().eval()


def make_tiny_batches() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(4, 3, 6, 6, generator=generator) for _ in range(3)]


@pytest.fixture
def tiny_model():
    return make_tiny_model()


@pytest.fixture
def tiny_batches():
    return make_tiny_batches()


@pytest.fixture(scope="session")
def tiny_table():
    """The QuantTable of ``tiny_model`` on ``tiny_batches`` (a short alpha grid); read-only."""
    model = make_tiny_model()
    quant = QuantConfig(alpha=AlphaConfig(start=0.9, stop=1.1, step=0.1))
    return build_quant_table(model, find_layers(model), run, make_tiny_batches(), quant)
