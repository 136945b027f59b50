import dataclasses
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from evoquant.config import AlphaConfig, QuantConfig
from evoquant.evaluate.shared_table import from_arrays, to_arrays
from evoquant.quant.layers import find_layers
from evoquant.quant.model import QuantizedModel
from evoquant.quant.table import build_quant_table


def run(model, batch):
    return model(batch)


@pytest.fixture(scope="module")
def table():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    ).eval()
    batches = [torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))]
    quant = QuantConfig(alpha=AlphaConfig(enabled=False))
    return build_quant_table(model, find_layers(model), run, batches, quant)


def read_only(table):
    """What a worker gets from the object store: the arrays, not writable."""

    def freeze(array: np.ndarray) -> np.ndarray:
        array = array.copy()
        array.setflags(write=False)
        return array

    shared = to_arrays(table)
    for key, entry in shared.entries.items():
        codes = type(entry.codes)(freeze(entry.codes.packed), entry.codes.shape)
        shared.entries[key] = dataclasses.replace(entry, codes=codes)
    return shared


def test_the_arrays_come_back_as_the_same_table(table):
    shared = to_arrays(table)
    back = from_arrays(shared)
    assert back.layers == table.layers and back.bit_configs == table.bit_configs
    for key, entry in table.entries.items():
        assert isinstance(shared.entries[key].codes.packed, np.ndarray)
        copy = back.entries[key]
        assert torch.equal(copy.codes.packed, entry.codes.packed)
        assert torch.equal(copy.weight, entry.weight)
        for ours, theirs in zip(
            [copy.weight_qparams, *copy.input_qparams],
            [entry.weight_qparams, *entry.input_qparams],
        ):
            assert torch.equal(ours.scale, theirs.scale)
            assert torch.equal(ours.zero_point, theirs.zero_point)
            assert (ours.qmin, ours.qmax, ours.axis, ours.symmetric) == (
                theirs.qmin,
                theirs.qmax,
                theirs.axis,
                theirs.symmetric,
            )


def test_a_worker_views_the_shared_arrays_without_a_copy_or_a_warning(table):
    shared = read_only(table)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = from_arrays(shared)
    for key, entry in shared.entries.items():
        address = entry.codes.packed.__array_interface__["data"][0]
        assert back.entries[key].codes.packed.data_ptr() == address


def test_workers_share_the_codes_and_dequantize_once_into_their_model(table):
    """The object store holds the packed codes; the model a worker builds holds floats."""
    shared = read_only(table)
    for (layer, w, a), entry in shared.entries.items():
        assert entry.codes.packed.dtype == (np.int16 if w == 16 else np.uint8)
        assert entry.codes.packed.nbytes < 4 * np.prod(entry.codes.shape)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    ).eval()
    quantized = QuantizedModel(model, from_arrays(shared))
    quantized.apply([4, 4])
    for name in table.layers:
        assert torch.equal(
            dict(model.named_modules())[name].weight, table.entry(name, (4, 8)).weight
        )
