import numpy as np
import pytest
import torch
from torch import nn

from evoquant.config import WeightConfig
from evoquant.quant.alpha import AlphaSearch, search_alphas
from evoquant.quant.calibrate import calibrate_ranges
from evoquant.quant.fakequant import fake_quantize
from evoquant.quant.layers import find_layers
from evoquant.quant.qparams import input_qparams, quantize_weight, weight_qparams

GRID = [round(0.8 + 0.02 * i, 10) for i in range(21)]


def run(model, batch):
    return model(batch)


def outlier_layer(rows: int = 4, seed: int = 3) -> nn.Sequential:
    """A linear layer whose weights are mostly small with one outlier per row: clipping pays."""
    torch.manual_seed(seed)
    layer = nn.Linear(16, rows, bias=False)
    with torch.no_grad():
        layer.weight.normal_(0, 0.1)
        layer.weight[:, 0] = 1.5
    return nn.Sequential(layer).eval()


def brute_force_mse(
    module: nn.Linear, x: torch.Tensor, bits: int, alpha: float
) -> float:
    quantized = fake_quantize(
        module.weight, weight_qparams(module.weight, bits, "thesis", alpha)
    )
    return torch.mean((x @ quantized.T - x @ module.weight.T) ** 2).item()


def test_alpha_w_is_the_grid_point_of_least_output_mse():
    model = outlier_layer()
    batch = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    layers = find_layers(model)
    ranges = calibrate_ranges(model, layers, run, [batch])
    with torch.no_grad():
        search = search_alphas(
            model, layers, ranges, run, [batch], [(2, 8), (4, 8)], "thesis", GRID
        )
        for bits in (2, 4):
            errors = [brute_force_mse(model[0], batch, bits, alpha) for alpha in GRID]
            assert search.alpha_w("0", bits) == pytest.approx(
                GRID[int(np.argmin(errors))]
            )
            # the search is not a no-op: the winner is no worse than plain min/max,
            # and at 2 bits, where clipping the outlier pays, it is strictly better
            assert min(errors) <= errors[GRID.index(1.0)]
            if bits == 2:
                assert min(errors) < errors[GRID.index(1.0)]


def test_alpha_a_is_searched_with_the_chosen_alpha_w():
    model = outlier_layer()
    batch = (
        torch.randn(64, 16, generator=torch.Generator().manual_seed(0)) ** 3
    )  # heavy tails
    layers = find_layers(model)
    ranges = calibrate_ranges(model, layers, run, [batch])
    with torch.no_grad():
        search = search_alphas(
            model, layers, ranges, run, [batch], [(2, 8)], "thesis", GRID
        )
        layer = model[0]
        weight = fake_quantize(
            layer.weight,
            weight_qparams(layer.weight, 2, "thesis", search.alpha_w("0", 2)),
        )
        reference = layer(batch)
        errors = []
        for alpha in GRID:
            x = fake_quantize(batch, input_qparams(ranges["0"][0], 8, "thesis", alpha))
            errors.append(torch.mean((x @ weight.T - reference) ** 2).item())
    assert search.alpha_a("0", (2, 8)) == pytest.approx(GRID[int(np.argmin(errors))])


def test_final_alpha_is_the_occurrence_weighted_mean():
    search = AlphaSearch([0.8, 1.0, 1.2])
    counts: dict = {}
    for errors in ([1, 2, 3], [1, 0, 3], [5, 4, 3], [0, 1, 2]):
        search.vote(counts, ("layer", 4), errors)
    search.weight_counts = counts
    assert counts[("layer", 4)].tolist() == [2, 1, 1]
    assert search.alpha_w("layer", 4) == pytest.approx((2 * 0.8 + 1.0 + 1.2) / 4)


def test_a_batch_where_all_alphas_tie_casts_no_vote():
    search = AlphaSearch([0.8, 1.0])
    counts: dict = {}
    search.vote(counts, ("fp16", 16), [0.5, 0.5])
    search.weight_counts = counts
    assert search.alpha_w("fp16", 16) == 1.0


def test_q_variant_searches_nothing(tiny_model, tiny_batches, tiny_run):
    layers = find_layers(tiny_model)
    ranges = calibrate_ranges(tiny_model, layers, tiny_run, tiny_batches)
    search = search_alphas(
        tiny_model, layers, ranges, tiny_run, tiny_batches, [(2, 8)], "thesis", [1.0]
    )
    assert search.weight_counts == {} and search.input_counts == {}
    assert search.alpha_w("stem.0", 2) == 1.0


def test_outlier_layer_prefers_clipping_at_two_bits():
    model = outlier_layer()
    batch = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    layers = find_layers(model)
    ranges = calibrate_ranges(model, layers, run, [batch])
    search = search_alphas(
        model, layers, ranges, run, [batch], [(2, 8)], "thesis", GRID
    )
    assert search.alpha_w("0", 2) != 1.0


def test_a_per_block_alpha_is_the_grid_point_of_least_block_output_error():
    model = outlier_layer(rows=3, seed=4)  # two blocks of 8, the outlier in the first
    batch = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    layers = find_layers(model)
    ranges = calibrate_ranges(model, layers, run, [batch])
    weights = WeightConfig(granularity="block", block_size=8)
    with torch.no_grad():
        search = search_alphas(
            model, layers, ranges, run, [batch], [(2, 8)], "thesis", GRID, weights
        )
        alpha = search.alpha_w("0", 2)
        w = model[0].weight
        assert alpha.shape == (3, 2)
        for row in range(3):
            for block in range(2):
                columns = slice(8 * block, 8 * block + 8)
                errors = []
                for candidate in GRID:
                    qp = weight_qparams(w, 2, "thesis", candidate, 8)
                    delta = (w - quantize_weight(w, qp))[row, columns]
                    errors.append(((batch[:, columns] @ delta) ** 2).sum().item())
                assert alpha[row, block].item() == pytest.approx(
                    GRID[int(np.argmin(errors))]
                )
    assert len(set(alpha.flatten().tolist())) > 1  # the blocks chose differently


def test_per_layer_block_alpha_is_one_factor(tiny_model, tiny_batches, tiny_run):
    layers = find_layers(tiny_model)
    ranges = calibrate_ranges(tiny_model, layers, tiny_run, tiny_batches)
    weights = WeightConfig(granularity="block", block_size=4, block_alpha="per_layer")
    search = search_alphas(
        tiny_model,
        layers,
        ranges,
        tiny_run,
        tiny_batches,
        [(4, 8)],
        "thesis",
        GRID,
        weights,
    )
    assert isinstance(search.alpha_w("attn.q", 4), float)
