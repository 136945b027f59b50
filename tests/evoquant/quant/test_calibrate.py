import gc
import weakref

import pytest
import torch

from evoquant.errors import UserError
from evoquant.quant.calibrate import (
    InputRange,
    RangeSettings,
    calibrate_ranges,
    main_module_groups,
)
from evoquant.quant.fakequant import fake_quantize
from evoquant.quant.layers import Layer, find_layers
from evoquant.quant.qparams import input_qparams

PER_CHANNEL = RangeSettings(per_channel=True)


def run(model, batch):
    return model(batch)


def test_channel_range_folds_batches_into_running_min_max():
    observer = InputRange(axis=1)
    batches = [torch.randn(2, 3, 4) for _ in range(4)]
    for batch in batches:
        observer.update(batch)
    everything = torch.cat(batches)
    torch.testing.assert_close(observer.min, everything.amin(dim=(0, 2)))
    torch.testing.assert_close(observer.max, everything.amax(dim=(0, 2)))


def test_calibration_keeps_only_per_channel_vectors(tiny_model, tiny_batches):
    layers = find_layers(tiny_model)
    seen = []
    modules = dict(tiny_model.named_modules())
    spies = [
        modules[layer.name].register_forward_pre_hook(
            lambda module, args: seen.extend(weakref.ref(a) for a in args)
        )
        for layer in layers
    ]
    ranges = calibrate_ranges(tiny_model, layers, run, tiny_batches, PER_CHANNEL)
    for spy in spies:
        spy.remove()
    gc.collect()
    alive = [ref() for ref in seen if ref() is not None]
    assert len(seen) > len(tiny_batches)
    assert all(any(t is batch for batch in tiny_batches) for t in alive), (
        "an activation outlived calibration"
    )
    channels = {"stem.0": 3, "stem.2": 8, "attn.q": 8, "head": 8}
    for name, observers in ranges.items():
        assert len(observers) == (2 if name == "attn.q_k_matmul" else 1)
        for observer in observers:
            assert observer.min.ndim == observer.max.ndim == 1
            if name in channels:
                assert observer.min.numel() == channels[name]


def test_each_main_module_is_calibrated_in_its_own_passes(tiny_model, tiny_batches):
    layers = find_layers(tiny_model)
    calls = []
    tiny_model.register_forward_pre_hook(lambda module, args: calls.append(1))
    calibrate_ranges(tiny_model, layers, run, tiny_batches)
    groups = [name for name, _ in main_module_groups(layers)]
    assert groups == ["stem", "attn", "head"]
    assert len(calls) == len(groups) * len(tiny_batches)


def test_ranges_equal_the_fp32_activation_ranges(tiny_model, tiny_batches):
    layers = find_layers(tiny_model)
    ranges = calibrate_ranges(tiny_model, layers, run, tiny_batches, PER_CHANNEL)
    first = torch.cat(tiny_batches)
    torch.testing.assert_close(ranges["stem.0"][0].min, first.amin(dim=(0, 2, 3)))
    per_tensor = calibrate_ranges(tiny_model, layers, run, tiny_batches)
    assert per_tensor["stem.0"][0].min == first.min()


def test_a_layer_that_never_runs_is_a_user_error(tiny_model, tiny_batches):
    ghost = Layer("ghost", "linear", 4)
    tiny_model.ghost = torch.nn.Linear(2, 2)
    with pytest.raises(UserError, match="layers.exclude"):
        calibrate_ranges(
            tiny_model, [*find_layers(tiny_model), ghost], run, tiny_batches
        )


def outlier_stream(seed: int = 0) -> torch.Tensor:
    """4 channels of 10,000 standard normal values; channel 0 holds one value of 50."""
    x = torch.randn(10_000, 4, generator=torch.Generator().manual_seed(seed))
    x[5, 0] = 50.0
    return x


def observed(x: torch.Tensor, settings: RangeSettings) -> InputRange:
    """An input range after both calibration passes over ``x``."""
    axis = -1 if settings.per_channel else None
    observer = InputRange(axis, settings)
    observer.update(x)
    observer.count(x)
    return observer


def test_percentile_clips_an_outlier_that_min_max_keeps():
    x = outlier_stream()
    minmax = observed(x, RangeSettings(True, "minmax"))
    percentile = observed(x, RangeSettings(True, "percentile", percentile=99.9))
    assert minmax.bounds(8, "thesis")[1][0] == 50.0
    low, high = percentile.bounds(8, "thesis")
    assert high[0] < 5.0  # the outlier is one value in 10,000
    # every channel keeps its 99.9 % interval: at most 0.1 % of values lie outside
    # each bound (a bin's width of slack), and the bounds stay inside min/max
    assert ((x > high).double().mean(0) <= 0.001).all()
    assert ((x < low).double().mean(0) <= 0.001).all()
    assert (high <= minmax.max).all() and (low >= minmax.min).all()
    assert ((x > high).sum(0) >= 1).all()  # and it does clip something


def test_percentile_100_is_min_max():
    x = outlier_stream()
    percentile = observed(x, RangeSettings(True, "percentile", percentile=100))
    low, high = percentile.bounds(8, "thesis")
    torch.testing.assert_close(low, x.amin(0))
    torch.testing.assert_close(high, x.amax(0))


def test_mse_clips_more_at_fewer_bits_and_never_for_fp16():
    x = torch.randn(20_000, 3, generator=torch.Generator().manual_seed(1)) ** 3
    mse = observed(x, RangeSettings(True, "mse"))
    _, two = mse.bounds(2, "thesis")
    _, eight = mse.bounds(8, "thesis")
    assert (two < eight).all() and (eight <= x.amax(0)).all()
    assert (two < 0.5 * x.amax(0)).all()  # heavy tails: 2 bits clip hard
    _, fp16 = mse.bounds(16, "tensorrt")  # a cast: clipping cannot pay
    torch.testing.assert_close(fp16, x.amax(0))


def test_mse_clip_lowers_the_quantization_error_it_measures():
    x = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(2)) ** 3
    errors = {}
    for estimator in ("minmax", "mse"):
        qp = input_qparams(observed(x, RangeSettings(True, estimator)), 4, "thesis")
        errors[estimator] = torch.mean((fake_quantize(x, qp) - x) ** 2).item()
    assert errors["mse"] < 0.5 * errors["minmax"]


def test_per_tensor_ranges_give_scalar_scales():
    x = outlier_stream()
    for estimator in ("minmax", "percentile", "mse"):
        observer = observed(x, RangeSettings(per_channel=False, estimator=estimator))
        assert observer.axis is None and observer.min.ndim == 0
        qp = input_qparams(observer, 8, "thesis")
        assert qp.axis is None and qp.scale.ndim == 0 and qp.zero_point.ndim == 0
    minmax = observed(x, RangeSettings(per_channel=False))
    assert (minmax.min, minmax.max) == (x.min(), x.max())


def test_robust_estimators_take_a_second_pass_and_keep_no_activation(
    tiny_model, tiny_batches
):
    layers = find_layers(tiny_model)
    calls = []
    tiny_model.register_forward_pre_hook(lambda module, args: calls.append(1))
    settings = RangeSettings(per_channel=False, estimator="percentile")
    ranges = calibrate_ranges(tiny_model, layers, run, tiny_batches, settings)
    assert len(calls) == 2 * 3 * len(tiny_batches)  # two passes per main module
    first = torch.cat(tiny_batches)
    stem = ranges["stem.0"][0]
    assert stem.histogram.shape == (1, 2048)
    assert stem.histogram.sum() == first.numel()  # every value counted once
    assert (stem.min, stem.max) == (first.min(), first.max())
