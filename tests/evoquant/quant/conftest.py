import pytest
import torch
from torch import nn

from evoquant.quant.matmul import QuantMatMul


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


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return TinyAttentionNet().eval()


@pytest.fixture
def tiny_batches():
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(4, 3, 6, 6, generator=generator) for _ in range(3)]
