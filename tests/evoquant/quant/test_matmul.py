"""``QuantMatMul``: ``torch.matmul`` as a module, so an attention product is a named layer."""

import pytest
import torch

from evoquant.quant.matmul import QuantMatMul


def tensor(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((2, 3, 5, 4), (2, 3, 4, 5)),  # q·kᵀ per head
        ((2, 3, 5, 5), (3, 5, 4)),  # broadcast over the batch
        ((4,), (4, 6)),  # a vector operand
    ],
)
def test_it_is_torch_matmul(a, b):
    x, y = tensor(*a), tensor(*b, seed=1)
    assert torch.equal(QuantMatMul()(x, y), torch.matmul(x, y))


def test_a_hook_sees_both_operands_and_may_replace_them():
    """What evoquant's fake quantizers do: rewrite each operand before the product."""
    product, seen = QuantMatMul(), []

    def halve(module, operands):
        seen.append(len(operands))
        return tuple(x / 2 for x in operands)

    product.register_forward_pre_hook(halve)
    x, y = tensor(3, 4), tensor(4, 2, seed=1)
    assert torch.allclose(product(x, y), torch.matmul(x, y) / 4)
    assert seen == [2]


def test_it_holds_no_weights_and_passes_gradients():
    product = QuantMatMul()
    assert list(product.parameters()) == [] and product.state_dict() == {}
    x = tensor(3, 4).requires_grad_()
    product(x, torch.ones(4, 1)).sum().backward()
    assert torch.equal(x.grad, torch.ones(3, 4))
