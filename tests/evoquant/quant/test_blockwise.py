import pytest
import torch

from evoquant.quant.blockwise import (
    block_qparams,
    block_ranges,
    fake_quantize_blocks,
)
from evoquant.quant.fakequant import QParams, compute_qparams, fake_quantize
from evoquant.quant.qparams import weight_qparams


def weight(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def per_block_reference(w: torch.Tensor, bits: int, scheme: str, block: int):
    """Each block of each row quantized alone with its own per-tensor quantizer."""
    rows = w.reshape(w.shape[0], -1)
    out = torch.empty_like(rows)
    for start in range(0, rows.shape[1], block):
        part = rows[:, start : start + block]
        qp = compute_qparams(part.amin(1), part.amax(1), bits, scheme, 0)
        out[:, start : start + block] = fake_quantize(part, qp)
    return out.reshape(w.shape)


@pytest.mark.parametrize("bits", [2, 4])
def test_each_block_has_its_own_range_and_a_ragged_last_block_too(bits):
    w = weight(3, 10)
    qp = block_qparams(w, bits, "thesis", 4)
    assert qp.block_size == 4 and qp.scale.shape == (3, 3)  # blocks of 4, 4 and 2
    low, high = block_ranges(w, 4)
    assert torch.equal(low[:, 2], w[:, 8:].amin(1))
    assert torch.equal(high[:, 0], w[:, :4].amax(1))
    out = fake_quantize_blocks(w, qp)
    assert torch.equal(out, per_block_reference(w, bits, "thesis", 4))
    assert (out - w).abs().max() < 0.5 * (high - low).max()  # a real quantizer


def test_blocks_cut_rows_of_conv_weights_in_memory_order():
    w = weight(4, 3, 3, 3)  # rows of 27 values: blocks of 8, 8, 8 and 3
    qp = block_qparams(w, 4, "thesis", 8)
    assert qp.scale.shape == (4, 4)
    out = fake_quantize_blocks(w, qp)
    assert out.shape == w.shape
    assert torch.equal(out, per_block_reference(w, 4, "thesis", 8))


def test_a_block_as_wide_as_the_row_is_per_channel():
    w = weight(5, 16)
    per_channel = weight_qparams(w, 4, "thesis")
    assert isinstance(per_channel, QParams) and per_channel.axis == 0
    assert torch.equal(
        fake_quantize_blocks(w, block_qparams(w, 4, "thesis", 16)),
        fake_quantize(w, per_channel),
    )


def test_blocks_of_128_fall_back_to_64_where_128_does_not_divide_the_rows():
    assert block_qparams(weight(2, 192), 4, "tensorrt", 128).block_size == 64
    assert block_qparams(weight(2, 96), 4, "tensorrt", 128).scale.shape == (2, 1)


def test_tensorrt_blocks_have_fp16_scales_and_an_fp16_weight():
    w = weight(6, 256)
    qp = block_qparams(w, 4, "tensorrt", 128)
    assert qp.fp16_output and not qp.zero_point.any() and (qp.qmin, qp.qmax) == (-8, 7)
    assert torch.equal(qp.scale, qp.scale.half().float())
    out = fake_quantize_blocks(w, qp)
    assert torch.equal(out, out.half().float())
    codes = torch.round(w.reshape(6, 2, 128) / qp.scale.unsqueeze(2)).clamp(-8, 7)
    expected = (codes * qp.scale.unsqueeze(2)).half().float().reshape(6, 256)
    assert torch.equal(out, expected)


def test_a_per_block_alpha_scales_each_block():
    w = weight(2, 8)
    alpha = torch.tensor([[0.9, 1.0], [1.1, 0.8]])
    plain = block_qparams(w, 4, "thesis", 4)
    scaled = block_qparams(w, 4, "thesis", 4, alpha)
    assert torch.allclose(scaled.scale, plain.scale * alpha)
    assert torch.equal(scaled.zero_point, plain.zero_point)
