import gc
import weakref

import pytest
import torch

from evoquant.errors import UserError
from evoquant.quant.calibrate import ChannelRange, calibrate_ranges, main_module_groups
from evoquant.quant.layers import Layer, find_layers


def run(model, batch):
    return model(batch)


def test_channel_range_folds_batches_into_running_min_max():
    observer = ChannelRange(axis=1)
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
    ranges = calibrate_ranges(tiny_model, layers, run, tiny_batches)
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
    ranges = calibrate_ranges(tiny_model, layers, run, tiny_batches)
    first = torch.cat(tiny_batches)
    torch.testing.assert_close(ranges["stem.0"][0].min, first.amin(dim=(0, 2, 3)))


def test_a_layer_that_never_runs_is_a_user_error(tiny_model, tiny_batches):
    ghost = Layer("ghost", "linear", 4)
    tiny_model.ghost = torch.nn.Linear(2, 2)
    with pytest.raises(UserError, match="layers.exclude"):
        calibrate_ranges(
            tiny_model, [*find_layers(tiny_model), ghost], run, tiny_batches
        )
