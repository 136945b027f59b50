"""Dead layers: the ones whose output the problem's outputs never use."""

import torch
from torch import nn

from evoquant.quant.layers import find_layers
from evoquant.quant.reach import unreached_layers


class TwoHeads(nn.Module):
    """A trunk, the head the problem reads, an unused head and a layer that never runs."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Linear(4, 4)
        self.used = nn.Linear(4, 2)
        self.unused = nn.Linear(4, 3)
        self.skipped = nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu_(self.trunk(x))  # in place: the trunk still reaches
        return {"out": self.used(h), "aux": self.unused(h)}


def layers(model):
    return find_layers(model)


def test_a_layer_whose_output_is_unused_is_dead_and_only_that_one():
    model = TwoHeads().eval()
    flags = [p.requires_grad for p in model.parameters()]
    dead = unreached_layers(
        model, layers(model), lambda m, b: m(b)["out"], torch.randn(2, 4)
    )
    assert dead == ["unused"]  # "skipped" never ran: not judged
    assert [p.requires_grad for p in model.parameters()] == flags


def test_every_output_of_a_mapping_counts():
    model = TwoHeads().eval()
    assert (
        unreached_layers(model, layers(model), lambda m, b: m(b), torch.randn(2, 4))
        == []
    )


def test_frozen_weights_and_no_grad_callers_are_judged_alike():
    model = TwoHeads().eval().requires_grad_(False)
    with torch.no_grad():
        dead = unreached_layers(
            model, layers(model), lambda m, b: m(b)["out"], torch.randn(2, 4)
        )
    assert dead == ["unused"]
    assert not any(p.requires_grad for p in model.parameters())


def test_outputs_without_a_graph_tell_nothing():
    model = TwoHeads().eval()

    def detached(model, batch):
        return model(batch)["out"].argmax(-1)

    assert unreached_layers(model, layers(model), detached, torch.randn(2, 4)) is None
    assert not model.trunk._forward_hooks  # the hooks are gone
