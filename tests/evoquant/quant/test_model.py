import copy

import pytest
import torch

from evoquant.config import AlphaConfig, QuantConfig
from evoquant.errors import UserError
from evoquant.quant.layers import find_layers
from evoquant.quant.model import QuantizedModel
from evoquant.quant.table import build_quant_table

FAST = QuantConfig(alpha=AlphaConfig(start=0.9, stop=1.1, step=0.1))


@pytest.fixture
def table(tiny_model, tiny_batches, tiny_run):
    return build_quant_table(
        tiny_model, find_layers(tiny_model), tiny_run, tiny_batches, FAST
    )


def test_switching_genomes_equals_a_freshly_quantized_model(
    tiny_model, tiny_batches, table
):
    pristine = copy.deepcopy(tiny_model)
    shared = QuantizedModel(tiny_model, table)
    first, second = [2, 8, 4, 16, 8], [8, 2, 16, 4, 2]
    batch = tiny_batches[0]
    with torch.no_grad():
        for genome in (first, second, first):
            shared.apply(genome)
            switched = shared(batch)
            fresh = QuantizedModel(copy.deepcopy(pristine), table)
            fresh.apply(genome)
            assert torch.equal(switched, fresh(batch))


def test_apply_none_restores_the_exact_fp32_model(tiny_model, tiny_batches, table):
    batch = tiny_batches[0]
    with torch.no_grad():
        reference = tiny_model(batch)
        weights = {name: p for name, p in tiny_model.named_parameters()}
        quantized = QuantizedModel(tiny_model, table)
        quantized.apply([2] * 5)
        assert not torch.equal(quantized(batch), reference)
        quantized.apply(None)
        assert torch.equal(quantized(batch), reference)
        assert all(p is weights[name] for name, p in tiny_model.named_parameters())


def test_per_layer_fp32_marker_and_explicit_configs(tiny_model, tiny_batches, table):
    quantized = QuantizedModel(tiny_model, table)
    quantized.apply([None, (8, 8), 4, None, 16])
    stem0 = dict(tiny_model.named_modules())["stem.0"]
    assert stem0.weight is quantized._layers[0].fp32_weight
    assert (
        tiny_model.stem[2].weight.data_ptr()
        == quantized._layers[1].configs[(8, 8)][0].data_ptr()
    )


def test_apply_selects_precomputed_weights_without_quantizing(
    tiny_model, table, monkeypatch
):
    quantized = QuantizedModel(tiny_model, table)
    import evoquant.quant.model as model_module

    def forbidden(*args, **kwargs):
        raise AssertionError("apply() recomputed a quantization")

    monkeypatch.setattr(model_module, "fake_quantize", forbidden)
    quantized.apply([2, 4, 8, 16, 2])
    assert torch.equal(tiny_model.stem[0].weight, table.entry("stem.0", (2, 8)).weight)


def test_sixteen_bits_is_close_to_fp32(tiny_model, tiny_batches, table):
    with torch.no_grad():
        reference = tiny_model(tiny_batches[0])
        quantized = QuantizedModel(tiny_model, table)
        quantized.apply([16] * 5)
        torch.testing.assert_close(
            quantized(tiny_batches[0]), reference, atol=1e-3, rtol=1e-3
        )


@pytest.mark.parametrize(
    ("genome", "message"),
    [
        ([8, 8, 8], "3 genes but the model has 5"),
        ([8, 8, 3, 8, 8], "attn.q: gene 3"),
        ([8, 8, 8, 8, (4, 4)], "gene"),
    ],
)
def test_bad_genomes_are_user_errors(tiny_model, table, genome, message):
    with pytest.raises(UserError, match=message):
        QuantizedModel(tiny_model, table).apply(genome)


def test_a_wrapped_model_cannot_be_wrapped_again_until_removed(
    tiny_model, tiny_batches, table
):
    with torch.no_grad():
        reference = tiny_model(tiny_batches[0])
        first = QuantizedModel(tiny_model, table)
        first.apply([2] * 5)
        with pytest.raises(UserError, match="already wrapped"):
            QuantizedModel(tiny_model, table)
        first.remove()
        second = QuantizedModel(tiny_model, table)
        second.apply(None)
        assert torch.equal(second(tiny_batches[0]), reference)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_quantizer_lives_on_the_models_device(tiny_model, tiny_batches, table):
    """A weightless attention matmul must quantize on the model's device too."""
    quantized = QuantizedModel(tiny_model.cuda(), table)
    for layer in quantized._layers:
        for weight, inputs in layer.configs.values():
            assert weight is None or weight.is_cuda
            assert all(qp.scale.is_cuda and qp.zero_point.is_cuda for qp in inputs)
    quantized.apply([2, 8, 4, 16, 8])
    with torch.no_grad():
        assert quantized(tiny_batches[0].cuda()).is_cuda


def _compiled_graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


@pytest.mark.slow
def test_the_compiled_mode_matches_eager_and_compiles_once(
    tiny_model, tiny_batches, table
):
    eager = QuantizedModel(copy.deepcopy(tiny_model), table)
    compiled = QuantizedModel(tiny_model, table, compiled=True)
    batch = tiny_batches[0]
    before = _compiled_graphs()
    genomes = [None, [2, 8, 4, 16, 8], [8, 2, 16, 4, 2], [4] * 5, [16] * 5, None]
    with torch.no_grad():
        for genome in genomes:
            eager.apply(genome)
            compiled.apply(genome)
            expected, got = eager(batch), compiled(batch)
            # fused kernels round differently in the last bit, which can move an
            # activation across a half-step: one quantization step at a few elements
            relative = (got - expected).norm() / expected.norm()
            assert relative < (1e-6 if genome is None else 1e-3), (genome, relative)
    # FP32 weights require grad, quantized ones do not: two graphs, then none
    assert _compiled_graphs() - before <= 2
    compiled.remove()
    assert compiled.runnable is not tiny_model


@pytest.mark.slow
def test_compiled_parts_serve_a_model_run_through_another_method(
    tiny_model, tiny_batches, table
):
    eager = QuantizedModel(copy.deepcopy(tiny_model), table)
    compiled = QuantizedModel(tiny_model, table, compiled=True, parts=["stem"])
    assert compiled.runnable is tiny_model  # the parts are compiled, not the forward
    batch = tiny_batches[0]
    before = _compiled_graphs()
    with torch.no_grad():
        for genome in (None, [2, 8, 4, 16, 8], [8, 2, 16, 4, 2]):
            eager.apply(genome)
            compiled.apply(genome)
            expected = eager.model.stem(batch)
            got = tiny_model.stem(batch)  # as a test_step would reach it
            assert (got - expected).norm() / expected.norm() < 1e-3
    assert 1 <= _compiled_graphs() - before <= 2
    compiled.remove()
    assert "forward" not in vars(tiny_model.stem)
