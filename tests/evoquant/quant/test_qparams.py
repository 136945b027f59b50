"""A layer's quantizers: per channel or per block for weights, per tensor under TensorRT for inputs."""

import pytest
import torch

from evoquant.quant.blockwise import BLOCK_MAX_BITS, BlockQParams, fake_quantize_blocks
from evoquant.quant.calibrate import InputRange
from evoquant.quant.fakequant import QParams, compute_qparams, fake_quantize
from evoquant.quant.qparams import (
    WEIGHT_AXIS,
    input_qparams,
    quantize_weight,
    weight_qparams,
)


def weight(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def test_blocks_apply_to_four_bits_and_fewer_only():
    w = weight(3, 256)
    assert isinstance(weight_qparams(w, 4, "thesis", block_size=128), BlockQParams)
    assert isinstance(weight_qparams(w, 2, "thesis", block_size=128), BlockQParams)
    eight = weight_qparams(w, 8, "thesis", block_size=128)
    assert isinstance(eight, QParams) and eight.scale.shape == (3,)


def test_tensorrt_int4_per_channel_is_one_fp16_block_per_row():
    w = weight(3, 256)
    qp = weight_qparams(w, 4, "tensorrt")
    assert isinstance(qp, BlockQParams) and qp.scale.shape == (3, 1)
    assert qp.block_size == 256
    exact = fake_quantize(w, compute_qparams(w.amin(1), w.amax(1), 4, "tensorrt", 0))
    assert torch.allclose(quantize_weight(w, qp), exact, rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("scheme", ["thesis", "tensorrt"])
@pytest.mark.parametrize("bits", [8, 16])
def test_wider_weights_are_per_output_channel_of_conv_rows(scheme, bits):
    """Above ``BLOCK_MAX_BITS`` a block size asked for is not taken."""
    w = weight(4, 3, 3, 3)
    assert bits > BLOCK_MAX_BITS
    assert isinstance(weight_qparams(w, bits, scheme, 0.9, block_size=9), QParams)
    qp = weight_qparams(w, bits, scheme, 0.9)
    rows = w.reshape(4, -1)
    expected = compute_qparams(
        rows.amin(1), rows.amax(1), bits, scheme, WEIGHT_AXIS, 0.9
    )
    assert isinstance(qp, QParams) and qp.axis == WEIGHT_AXIS
    assert torch.equal(qp.scale, expected.scale)
    assert torch.equal(quantize_weight(w, qp), fake_quantize(w, expected))


def test_quantize_weight_takes_the_quantizer_it_is_given():
    w = weight(2, 8)
    blocks = weight_qparams(w, 4, "thesis", block_size=4)
    assert torch.equal(quantize_weight(w, blocks), fake_quantize_blocks(w, blocks))
    channels = weight_qparams(w, 4, "thesis")
    assert torch.equal(quantize_weight(w, channels), fake_quantize(w, channels))
    assert not torch.equal(quantize_weight(w, blocks), quantize_weight(w, channels))


def channel_range(x: torch.Tensor) -> InputRange:
    observed = InputRange(axis=1)
    observed.update(x)
    return observed


def test_tensorrt_folds_a_per_channel_input_range_into_its_extremes():
    x = torch.tensor([[-1.0, 0.5, 2.0], [0.0, -3.0, 1.0]])
    qp = input_qparams(channel_range(x), 8, "tensorrt")
    assert qp.axis is None and qp.scale.ndim == 0
    assert qp.scale.item() == pytest.approx(3.0 / 127)


def test_other_schemes_keep_the_per_channel_input_range():
    x = torch.tensor([[-1.0, 0.5, 2.0], [0.0, -3.0, 1.0]])
    qp = input_qparams(channel_range(x), 8, "thesis", alpha=0.5)
    expected = compute_qparams(x.amin(0), x.amax(0), 8, "thesis", 1, 0.5)
    assert qp.axis == 1 and torch.equal(qp.scale, expected.scale)
    assert torch.equal(qp.zero_point, expected.zero_point)
