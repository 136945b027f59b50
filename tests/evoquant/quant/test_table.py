import os
from pathlib import Path

import pytest
import torch

from evoquant.config import AlphaConfig, QuantConfig
from evoquant.errors import UserError
from evoquant.quant.layers import find_layers
from evoquant.quant.table import (
    META_FILE,
    TENSORS_FILE,
    QuantTable,
    build_quant_table,
    load_or_build,
)

FAST = QuantConfig(alpha=AlphaConfig(start=0.9, stop=1.1, step=0.1))


@pytest.fixture
def table(tiny_model, tiny_batches, tiny_run):
    return build_quant_table(
        tiny_model, find_layers(tiny_model), tiny_run, tiny_batches, FAST
    )


def test_every_layer_has_every_bit_config(table, tiny_model):
    names = [layer.name for layer in find_layers(tiny_model)]
    assert table.layers == names
    assert set(table.entries) == {(n, w, a) for n in names for w, a in FAST.bit_configs}
    matmul = table.entry("attn.q_k_matmul", (8, 8))
    assert matmul.weight is None and len(matmul.input_qparams) == 2


def test_save_and_load_round_trip(table, tmp_path):
    table.save(tmp_path)
    loaded = QuantTable.load(tmp_path)
    assert loaded.key == table.key and loaded.bit_configs == table.bit_configs
    for key, entry in table.entries.items():
        other = loaded.entries[key]
        assert (entry.alpha_w, entry.alpha_a) == (other.alpha_w, other.alpha_a)
        if entry.weight is not None:
            assert torch.equal(entry.weight, other.weight)
        for a, b in zip(entry.input_qparams, other.input_qparams):
            assert torch.equal(a.scale, b.scale) and torch.equal(
                a.zero_point, b.zero_point
            )
            assert (a.qmin, a.qmax, a.axis, a.fp16) == (b.qmin, b.qmax, b.axis, b.fp16)
    assert not list(tmp_path.glob("*.tmp"))


def test_stale_table_is_detected_and_rebuilt(
    tiny_model, tiny_batches, tiny_run, tmp_path
):
    layers = find_layers(tiny_model)
    first, rebuilt = load_or_build(
        tmp_path, tiny_model, layers, tiny_run, tiny_batches, FAST
    )
    assert rebuilt
    again, rebuilt = load_or_build(
        tmp_path, tiny_model, layers, tiny_run, tiny_batches, FAST
    )
    assert not rebuilt and again.key == first.key
    other_settings = QuantConfig(alpha=AlphaConfig(enabled=False))
    changed, rebuilt = load_or_build(
        tmp_path, tiny_model, layers, tiny_run, tiny_batches, other_settings
    )
    assert rebuilt and changed.key != first.key
    with torch.no_grad():
        tiny_model.head.weight.add_(1e-3)
    _, rebuilt = load_or_build(
        tmp_path, tiny_model, layers, tiny_run, tiny_batches, other_settings
    )
    assert rebuilt


def flip_tensor_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-16:] = bytes(255 - b for b in data[-16:])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda d: (d / META_FILE).write_text("{ truncated"), "Expecting property"),
        (lambda d: flip_tensor_bytes(d / TENSORS_FILE), "fails its checksum"),
        (lambda d: (d / TENSORS_FILE).write_bytes(b""), "fails its checksum"),
        (lambda d: (d / TENSORS_FILE).unlink(), "No such file"),
        (
            lambda d: (d / META_FILE).write_text(
                (d / META_FILE).read_text().replace('"alpha_w": 1.0', '"alpha_w": 1.1')
            ),
            "quant_table.json fails its checksum",
        ),
    ],
    ids=["truncated-json", "tensor-bytes", "zeroed", "missing", "edited-json"],
)
def test_a_damaged_table_is_refused_in_one_line(table, tmp_path, damage, reason):
    table.save(tmp_path)
    damage(tmp_path)
    with pytest.raises(UserError, match=reason) as error:
        QuantTable.load(tmp_path)
    assert "delete quant_table.safetensors and quant_table.json" in str(error.value)
    assert "\n" not in str(error.value)


def test_table_files_get_the_usual_mode(table, tmp_path):
    """safetensors writes 0600; a team's other users must be able to read a run."""
    table.save(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    for name in (META_FILE, TENSORS_FILE):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == [META_FILE, TENSORS_FILE]


def test_tensorrt_scheme_has_zero_points_zero_and_per_tensor_inputs(
    tiny_model, tiny_batches, tiny_run
):
    config = QuantConfig(scheme="tensorrt", alpha=AlphaConfig(enabled=False))
    table = build_quant_table(
        tiny_model, find_layers(tiny_model), tiny_run, tiny_batches, config
    )
    entry = table.entry("stem.2", (8, 8))
    assert not entry.weight_qparams.zero_point.any()
    assert (
        entry.input_qparams[0].axis is None and entry.input_qparams[0].scale.ndim == 0
    )
    assert table.entry("stem.2", (16, 16)).input_qparams[0].fp16
