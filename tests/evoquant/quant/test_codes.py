import math

import pytest
import torch

from evoquant.quant.codes import decode, encode, integers
from evoquant.quant.qparams import quantize_weight, weight_qparams

CASES = [
    (bits, scheme, block)
    for bits in (2, 4, 8, 16)
    for scheme in ("thesis", "tensorrt")
    for block in (None, 4)
]


def weight(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("bits, scheme, block", CASES)
def test_decoding_gives_the_fake_quantized_weight_bit_for_bit(bits, scheme, block):
    w = weight(5, 3, 1, 3)  # 45 values: odd, so the last byte is half used
    qp = weight_qparams(w, bits, scheme, 0.9, block)
    codes = encode(w, qp)
    assert torch.equal(decode(codes, qp), quantize_weight(w, qp))


@pytest.mark.parametrize(
    "bits, scheme, dtype, nbytes",
    [
        (2, "thesis", torch.uint8, math.ceil(45 / 4)),
        (4, "tensorrt", torch.uint8, math.ceil(45 / 2)),
        (8, "tensorrt", torch.uint8, 45),
        (16, "thesis", torch.int16, 90),
        (16, "tensorrt", torch.float16, 90),
    ],
)
def test_codes_take_what_their_width_needs(bits, scheme, dtype, nbytes):
    codes = encode(weight(5, 9), weight_qparams(weight(5, 9), bits, scheme))
    assert codes.packed.dtype == dtype
    assert codes.packed.numel() * codes.packed.element_size() == nbytes
    assert codes.shape == (5, 9)


def test_the_integers_are_the_grid_values():
    w = weight(4, 8)
    qp = weight_qparams(w, 4, "tensorrt", block_size=4)
    values = integers(encode(w, qp), qp)
    assert values.shape == w.shape and values.min() >= -8 and values.max() <= 7
    assert values.abs().amax() == 7  # the largest magnitude sits on the grid's end
