import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from evoquant.config import ActivationConfig, AlphaConfig, QuantConfig, WeightConfig
from evoquant.errors import UserError
from evoquant.quant.blockwise import BlockQParams
from evoquant.quant.layers import find_layers
from evoquant.quant.qparams import quantize_weight, weight_qparams
from evoquant.quant.table import (
    FORMAT,
    META_FILE,
    TENSORS_FILE,
    OutdatedTable,
    QuantTable,
    build_quant_table,
    load_or_build,
    table_key,
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
        if entry.codes is not None:
            assert torch.equal(entry.codes.packed, other.codes.packed)
            assert entry.codes.shape == other.codes.shape
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


ACTIVATION_OPTIONS = [
    ActivationConfig(granularity="per_channel"),
    ActivationConfig(estimator="percentile"),
    ActivationConfig(estimator="percentile", percentile=99.9),
    ActivationConfig(estimator="mse"),
    ActivationConfig(granularity="per_channel", estimator="mse"),
]


def test_the_table_key_covers_the_activation_settings(tiny_model, tiny_batches):
    layers = find_layers(tiny_model)
    default = table_key(tiny_model, layers, tiny_batches, FAST)
    spelled = FAST.model_copy(update={"activations": ActivationConfig()})
    assert table_key(tiny_model, layers, tiny_batches, spelled) == default
    keys = {
        table_key(
            tiny_model,
            layers,
            tiny_batches,
            FAST.model_copy(update={"activations": activations}),
        )
        for activations in ACTIVATION_OPTIONS
    }
    assert default not in keys and len(keys) == len(ACTIVATION_OPTIONS)


PRE_ACTIVATIONS_QUANT = {
    "scheme": "thesis",
    "bit_configs": [[2, 8], [4, 8], [8, 8], [16, 16]],
    "alpha": {"enabled": True, "start": 0.8, "stop": 1.2, "step": 0.02},
}
"""``QuantConfig().model_dump(mode="json")`` of 0.2.0, before activation settings."""


def pre_activations_key(model, layers, batches) -> str:
    """``table_key`` as 0.2.0 computed it (weights, batches, then these settings)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().numpy().tobytes())
    for tensor in batches:
        digest.update(tensor.numpy().tobytes())
    settings = {"quant": PRE_ACTIVATIONS_QUANT, "layers": [x.name for x in layers]}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def test_a_table_built_before_activation_settings_keeps_its_key():
    """Per-channel ranges (what 0.2 did) are left out of the key: old tables stay valid."""
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():  # fixed values: initialisers differ between CPU kernels
        model.weight.copy_(torch.tensor([[0.5, -1.0], [2.0, 0.25]]))
        model.bias.copy_(torch.tensor([0.1, -0.2]))
    layers, batches = find_layers(model), [torch.ones(1, 2)]
    legacy = QuantConfig(activations=ActivationConfig(granularity="per_channel"))
    expected = pre_activations_key(model, layers, batches)
    assert table_key(model, layers, batches, legacy) == expected
    assert table_key(model, layers, batches, QuantConfig()) != expected


@pytest.mark.parametrize("estimator", ["minmax", "percentile", "mse"])
def test_per_tensor_tables_hold_scalar_input_scales(
    tiny_model, tiny_batches, tiny_run, estimator
):
    quant = FAST.model_copy(
        update={
            "activations": ActivationConfig(
                granularity="per_tensor", estimator=estimator
            )
        }
    )
    table = build_quant_table(
        tiny_model, find_layers(tiny_model), tiny_run, tiny_batches, quant
    )
    for (layer, w, a), entry in table.entries.items():
        for qp in entry.input_qparams:
            assert qp.axis is None and qp.scale.ndim == 0, (layer, w, a)
    per_channel = build_quant_table(
        tiny_model,
        find_layers(tiny_model),
        tiny_run,
        tiny_batches,
        FAST.model_copy(update={"activations": ACTIVATION_OPTIONS[0]}),
    )
    assert per_channel.entry("stem.2", (8, 8)).input_qparams[0].scale.shape == (8,)


def test_weights_are_stored_as_packed_codes_that_decode_to_the_quantized_weight(
    table, tiny_model, tmp_path
):
    from safetensors.torch import load_file

    table.save(tmp_path)
    tensors = load_file(tmp_path / TENSORS_FILE)
    weight = tiny_model.head.weight
    for (w, a), dtype, nbytes in (
        ((2, 8), torch.uint8, weight.numel() // 4),
        ((4, 8), torch.uint8, weight.numel() // 2),
        ((8, 8), torch.uint8, weight.numel()),
        ((16, 16), torch.int16, 2 * weight.numel()),
    ):
        codes = tensors[f"head/W{w}A{a}/weight_codes"]
        assert codes.dtype == dtype and codes.numel() * codes.element_size() == nbytes
        entry = table.entry("head", (w, a))
        assert torch.equal(entry.weight, quantize_weight(weight, entry.weight_qparams))
    assert not any(name.endswith("/weight") for name in tensors)
    assert json.loads((tmp_path / META_FILE).read_text())["format"] == FORMAT


def test_block_quantizers_round_trip(tiny_model, tiny_batches, tiny_run, tmp_path):
    quant = FAST.model_copy(
        update={"weights": WeightConfig(granularity="block", block_size=4)}
    )
    built = build_quant_table(
        tiny_model, find_layers(tiny_model), tiny_run, tiny_batches, quant
    )
    built.save(tmp_path)
    loaded = QuantTable.load(tmp_path)
    entry, other = built.entry("attn.q", (4, 8)), loaded.entry("attn.q", (4, 8))
    assert isinstance(other.weight_qparams, BlockQParams)
    assert other.weight_qparams.block_size == 4 and other.weight_qparams.blocks == 2
    assert torch.equal(other.weight_qparams.scale, entry.weight_qparams.scale)
    assert torch.equal(other.weight, entry.weight)
    plain = weight_qparams(tiny_model.attn["q"].weight, 4, "thesis", block_size=4)
    assert not torch.equal(entry.weight_qparams.scale, plain.scale)  # alpha per block
    assert not isinstance(loaded.entry("attn.q", (8, 8)).weight_qparams, BlockQParams)


def as_format_1(directory: Path) -> None:
    """The JSON as evoquant 0.2 wrote it: no format number (its checksum still good)."""
    meta = json.loads((directory / META_FILE).read_text())
    del meta["format"], meta["sha256"]
    canonical = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    meta["sha256"] = hashlib.sha256(canonical).hexdigest()
    (directory / META_FILE).write_text(json.dumps(meta))


def test_an_old_format_table_is_rebuilt_or_refused_in_one_line(
    tiny_model, tiny_batches, tiny_run, tmp_path
):
    layers = find_layers(tiny_model)
    load_or_build(tmp_path, tiny_model, layers, tiny_run, tiny_batches, FAST)
    as_format_1(tmp_path)
    with pytest.raises(
        OutdatedTable, match="has format 1, this evoquant reads format 2"
    ):
        QuantTable.load(tmp_path)
    with pytest.raises(UserError, match="search in a new run directory") as error:
        load_or_build(tmp_path, tiny_model, layers, tiny_run, tiny_batches, FAST, False)
    assert "\n" not in str(error.value)
    _, rebuilt = load_or_build(
        tmp_path, tiny_model, layers, tiny_run, tiny_batches, FAST
    )
    assert rebuilt and QuantTable.load(tmp_path).key
