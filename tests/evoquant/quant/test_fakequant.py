import pytest
import torch

from evoquant.quant.fakequant import (
    BIT_WIDTHS,
    SCHEMES,
    QParams,
    compute_qparams,
    fake_quantize,
    integer_range,
)


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


# --- the evaluation path against the formula it implements ---------------------------

FUSED_MISMATCH_RATE = {2: 1e-6, 4: 1e-6, 8: 1e-5, 16: 1e-3}
"""Upper bounds on the share of elements where torch's fused kernel rounds the other
way (docs/method.md, "Fake quantization kernels"; measured: 0, 0, 5e-7, 1.6e-4)."""


def formula(x: torch.Tensor, qp: QParams) -> torch.Tensor:
    """The module docstring's formula, one step at a time, independent of fake_quantize."""
    if qp.fp16:
        return x.half().float()
    shape = [1] * x.ndim
    if qp.scale.ndim:
        shape[qp.axis] = -1
    scale, zero_point = qp.scale.view(shape), qp.zero_point.view(shape)
    q = torch.clamp(torch.round(x / scale) + zero_point, qp.qmin, qp.qmax)
    return (q - zero_point) * scale


def near_ties(qp: QParams) -> torch.Tensor:
    """Every half-step of a per-tensor grid and the floats on either side of it."""
    k = torch.arange(qp.qmin, qp.qmax, dtype=torch.float32) - qp.zero_point
    ties = (k + 0.5) * qp.scale
    return torch.cat(
        [
            ties,
            torch.nextafter(ties, torch.tensor(float("inf"))),
            torch.nextafter(ties, torch.tensor(float("-inf"))),
        ]
    )


def samples(seed: int, shape=(4, 3, 50, 50)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(shape, generator=generator) + 0.5


RANGES = {
    "straddling_zero": (-1.0, 3.0),
    "all_positive": (2.0, 4.0),  # Z = -255 at 8 bits: outside the grid
    "all_negative": (-4.0, -2.0),  # Z above qmax
}


def quantizers(bits: int, scheme: str):
    """Per-tensor quantizers of every range kind, alpha 1 and alpha 0.5 (which keeps Z)."""
    for low, high in RANGES.values():
        for alpha in (1.0, 0.5):
            yield compute_qparams(
                scalar(low), scalar(high), bits, scheme, None, alpha=alpha
            )


SCHEME_BITS = [(s, b) for s in SCHEMES for b in BIT_WIDTHS]


@pytest.mark.parametrize(("scheme", "bits"), SCHEME_BITS)
def test_per_tensor_equals_the_formula_bit_for_bit(scheme, bits):
    for i, qp in enumerate(quantizers(bits, scheme)):
        for x in (samples(i), near_ties(qp) if not qp.fp16 else samples(i + 99)):
            assert torch.equal(fake_quantize(x, qp), formula(x, qp))


@pytest.mark.parametrize(("scheme", "bits"), SCHEME_BITS)
def test_per_channel_equals_the_formula_bit_for_bit(scheme, bits):
    x = samples(7)
    # channels straddling zero, all positive (Z below the grid) and all negative
    low = torch.tensor([-1.0, 2.0, -4.0])
    qp = compute_qparams(low, low + 2.0, bits, scheme, axis=1, alpha=0.8)
    assert torch.equal(fake_quantize(x, qp), formula(x, qp))


def test_out_of_grid_zero_points_are_what_the_tests_exercise():
    zero_points = {
        qp.zero_point.item() for qp in quantizers(8, "thesis") if not qp.fp16
    }
    assert min(zero_points) < 0 and max(zero_points) > 255


def test_cpu_quantizers_use_the_vectorised_formula_not_the_fused_kernel():
    qp = compute_qparams(scalar(-1.0), scalar(3.0), 8, "thesis", None)
    assert qp.fused_zero_point is None
    assert qp.bounds == (0 - qp.zero_point.item(), 255 - qp.zero_point.item())


def fused_on(monkeypatch, device_type: str) -> None:
    """Make the fused kernel the path on ``device_type`` (its CPU build computes what
    its CUDA build does: ``x * (1 / S)``, nearbyint, clamp, ``(q - Z) * S``)."""
    monkeypatch.setattr(
        "evoquant.quant.fakequant._fused_kernel_runs_on",
        lambda device: device.type == device_type,
    )


def assert_within_fused_tolerance(out, expected, x, qp, bits):
    """Differences are single steps, rare, and only where x / S is near a half-step."""
    differ = out != expected
    assert differ.float().mean().item() <= FUSED_MISMATCH_RATE[bits]
    steps = (out - expected)[differ].abs() / qp.scale
    assert (steps <= 1.01).all()
    ratio = (x / qp.scale)[differ]
    assert ((ratio - ratio.floor() - 0.5).abs() <= 1e-2).all()


@pytest.mark.parametrize(("scheme", "bits"), SCHEME_BITS)
def test_fused_kernel_stays_within_the_documented_tolerance(monkeypatch, scheme, bits):
    fused_on(monkeypatch, "cpu")
    for i, qp in enumerate(quantizers(bits, scheme)):
        x = samples(i, shape=(200_000,))
        if qp.fp16:
            assert qp.fused_zero_point is None
            assert torch.equal(fake_quantize(x, qp), formula(x, qp))
            continue
        assert qp.fused_zero_point.dtype == torch.int32
        assert_within_fused_tolerance(fake_quantize(x, qp), formula(x, qp), x, qp, bits)
        ties = near_ties(qp)
        out, expected = fake_quantize(ties, qp), formula(ties, qp)
        assert ((out - expected).abs() <= 1.01 * qp.scale).all()


def test_fused_kernel_keeps_an_out_of_grid_zero_point(monkeypatch):
    fused_on(monkeypatch, "cpu")
    qp = compute_qparams(scalar(2.0), scalar(4.0), 8, "thesis", None)
    assert qp.zero_point.item() == -255 and qp.fused_zero_point is not None
    x = torch.tensor([1.0, 2.0, 4.0, 9.0, -3.0])
    assert torch.equal(fake_quantize(x, qp), formula(x, qp))


def test_fused_kernel_is_not_used_per_channel_or_for_fp16(monkeypatch):
    fused_on(monkeypatch, "cpu")
    per_channel = compute_qparams(
        torch.tensor([-1.0, 2.0]), torch.tensor([1.0, 4.0]), 8, "thesis", axis=0
    )
    fp16 = compute_qparams(scalar(-1.0), scalar(1.0), 16, "tensorrt", None)
    assert per_channel.fused_zero_point is None and fp16.fused_zero_point is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("scheme", "bits"), SCHEME_BITS)
def test_cuda_matches_the_cpu_formula_within_the_tolerance(scheme, bits):
    for i, cpu_qp in enumerate(quantizers(bits, scheme)):
        qp = QParams(
            cpu_qp.scale.cuda(),
            cpu_qp.zero_point.cuda(),
            cpu_qp.qmin,
            cpu_qp.qmax,
            cpu_qp.axis,
            cpu_qp.fp16,
        )
        assert (qp.fused_zero_point is not None) == (not qp.fp16)
        x = samples(i, shape=(200_000,))
        out = fake_quantize(x.cuda(), qp).cpu()
        if qp.fp16:
            assert torch.equal(out, formula(x, cpu_qp))
        else:
            assert_within_fused_tolerance(out, formula(x, cpu_qp), x, cpu_qp, bits)
