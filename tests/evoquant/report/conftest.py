"""A toy 4-layer search result shared by the report tests."""

from __future__ import annotations

import pytest

LAYERS = ["conv1", "layer1.conv", "attn.qk", "fc"]
PARAMS = 100  # every layer has the same weight count, so relative cost = mean bits / 32


def _point(bits: list[int], error: float) -> dict:
    return {
        "bits": bits,
        "f_bits": float(sum(bits) * PARAMS),
        "relative_cost": sum(bits) / (32 * len(bits)),
        "avg_weight_bits": sum(bits) / len(bits),
        "error": error,
        "top1": 0.75 - error,
    }


@pytest.fixture
def make_point():
    """Builds a point from its genome and error, with consistent cost metrics."""
    return _point


@pytest.fixture
def layer_names() -> list[str]:
    return list(LAYERS)


@pytest.fixture
def uniform_points() -> list[dict]:
    errors = {2: 0.8, 4: 0.05, 8: 0.004, 16: 0.0001}
    return [_point([b] * 4, e) for b, e in errors.items()]


@pytest.fixture
def labelled_uniform(uniform_points) -> dict[str, dict]:
    """The uniform points by label, as reports take them."""
    return {f"W{p['bits'][0]}": p for p in uniform_points}


@pytest.fixture
def mixed_points() -> list[dict]:
    """Mixed genomes; [4,4,4,2] dominates W4 and [8,8,8,4] dominates W8."""
    return [
        _point([2, 2, 4, 4], 0.3),
        _point([4, 4, 4, 2], 0.04),
        _point([8, 4, 4, 4], 0.01),
        _point([8, 8, 8, 4], 0.003),
        _point([8, 8, 8, 8], 0.02),  # dominated by [8, 4, 4, 4]
    ]
