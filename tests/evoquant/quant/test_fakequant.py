import pytest
import torch

from evoquant.quant.fakequant import compute_qparams, fake_quantize, integer_range


def scalar(value: float) -> torch.Tensor:
    return torch.tensor(value)


def test_thesis_scheme_matches_hand_computed_values():
    # min -1, max 3, 2 bits: S = 4/3, Z = round(0.75) = 1, grid q in [0, 3]
    qp = compute_qparams(scalar(-1.0), scalar(3.0), 2, "thesis", None)
    assert qp.scale.item() == pytest.approx(4 / 3)
    assert qp.zero_point.item() == 1
    x = torch.tensor([-1.0, 0.0, 0.5, 1.0, 3.0, 5.0])
    expected = torch.tensor([-4 / 3, 0.0, 0.0, 4 / 3, 8 / 3, 8 / 3])
    torch.testing.assert_close(fake_quantize(x, qp), expected)


def test_zero_point_outside_the_grid_still_reproduces_the_range():
    # all-positive channel: Z = round(-2 / (2/255)) = -255, representable values span [2, 4]
    qp = compute_qparams(scalar(2.0), scalar(4.0), 8, "thesis", None)
    assert qp.zero_point.item() == -255
    torch.testing.assert_close(
        fake_quantize(torch.tensor([1.0, 2.0, 4.0, 9.0]), qp),
        torch.tensor([2.0, 2.0, 4.0, 4.0]),
    )


@pytest.mark.parametrize("scheme", ["thesis", "tensorrt"])
@pytest.mark.parametrize("value", [2.5, -3.0, 0.0])
def test_constant_channel_is_exact_and_finite(scheme, value):
    qp = compute_qparams(scalar(value), scalar(value), 4, scheme, None)
    assert torch.isfinite(qp.scale) and qp.scale > 0
    assert fake_quantize(torch.full((5,), value), qp).tolist() == [value] * 5


def test_tensorrt_scheme_is_symmetric_with_zero_point_zero():
    qp = compute_qparams(scalar(-1.0), scalar(3.0), 8, "tensorrt", None)
    assert qp.zero_point.item() == 0
    assert (qp.qmin, qp.qmax) == (-128, 127)
    assert qp.scale.item() == pytest.approx(3 / 127)
    out = fake_quantize(torch.tensor([3.0, -5.0, 0.0]), qp)
    torch.testing.assert_close(out, torch.tensor([3.0, -128 * 3 / 127, 0.0]))


def test_tensorrt_16_bits_is_fp16():
    qp = compute_qparams(scalar(-1.0), scalar(1.0), 16, "tensorrt", None)
    x = torch.tensor([1.0 / 3.0, 1e-8, 70000.0])
    assert torch.equal(fake_quantize(x, qp), x.half().float())


def test_alpha_scales_the_step_and_keeps_the_zero_point():
    base = compute_qparams(scalar(-1.0), scalar(3.0), 4, "thesis", None)
    shrunk = compute_qparams(scalar(-1.0), scalar(3.0), 4, "thesis", None, alpha=0.8)
    assert shrunk.scale.item() == pytest.approx(0.8 * base.scale.item())
    assert shrunk.zero_point.item() == base.zero_point.item()


def test_per_channel_broadcast_along_the_axis():
    x = torch.stack([torch.linspace(-1, 1, 7), torch.linspace(0, 10, 7)]).reshape(
        1, 2, 7
    )
    qp = compute_qparams(x.amin(dim=(0, 2)), x.amax(dim=(0, 2)), 8, "thesis", axis=1)
    out = fake_quantize(x, qp)
    assert out.shape == x.shape
    # each channel keeps its own step: 2/255 for the first, 10/255 for the second
    steps = torch.tensor([2 / 255, 10 / 255]).view(1, 2, 1)
    assert ((out - x).abs() <= steps / 2 + 1e-6).all()


def test_rounding_is_half_to_even_like_onnx():
    qp = compute_qparams(scalar(0.0), scalar(255.0), 8, "thesis", None)  # S = 1, Z = 0
    assert fake_quantize(torch.tensor([0.5, 1.5, 2.5]), qp).tolist() == [0.0, 2.0, 2.0]


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_error_shrinks_with_bits(bits):
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    qp = compute_qparams(x.min(), x.max(), bits, "thesis", None)
    step = (x.max() - x.min()) / (2**bits - 1)
    assert (fake_quantize(x, qp) - x).abs().max() <= step / 2 + 1e-6


def test_unsupported_bit_width_is_rejected():
    with pytest.raises(ValueError, match="bit-width 3"):
        integer_range(3, symmetric=False)
