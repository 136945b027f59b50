"""GenomeFitness: one genome -> its bit cost, its error against FP32 and task metrics."""

import pytest
import torch
from torch import nn

from evoquant.api import Problem
from evoquant.config import AlphaConfig, QuantConfig, parse_config
from evoquant.errors import UserError
from evoquant.evaluate.fitness import GenomeFitness, scoring
from evoquant.quant.attention import DISCOVERED
from evoquant.quant.layers import find_layers
from evoquant.quant.model import WRAPPED
from evoquant.quant.table import build_quant_table

CONV_WEIGHTS, FC_WEIGHTS = 4 * 1 * 3 * 3, 3 * 4 * 4 * 4
WEIGHTS = CONV_WEIGHTS + FC_WEIGHTS


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)
    ).eval()


def make_batches(seed: int, count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 1, 4, 4, generator=generator) for _ in range(count)]


class Calls:
    """``run`` that counts its calls; ``as_dict`` returns non-tensor outputs."""

    def __init__(self, as_dict: bool = False):
        self.count = 0
        self.as_dict = as_dict

    def __call__(self, model, batch):
        self.count += 1
        out = model(batch)
        return {"logits": out} if self.as_dict else out


def max_abs(reference, outputs) -> dict[str, float]:
    def logits(out):
        return out["logits"] if isinstance(out, dict) else out

    return {
        "max_abs": max(
            float((logits(r) - logits(o)).abs().max())
            for r, o in zip(reference, outputs)
        )
    }


def batch_count(outputs, batches) -> dict[str, float]:
    return {
        "batches": float(len(batches)),
        "samples": float(sum(len(b) for b in batches)),
    }


def parts(run, **problem_args):
    """A tiny problem, its model, layers and table (W4A8 and W8A8)."""
    model = make_model()
    problem = Problem(
        name="tiny",
        build_model=make_model,
        calibration_batches=make_batches(1, 1),
        fitness_batches=make_batches(2, 2),
        run=run,
        **problem_args,
    )
    layers = find_layers(model)
    quant = QuantConfig(bit_configs=[(4, 8), (8, 8)], alpha=AlphaConfig(enabled=False))
    table = build_quant_table(model, layers, run, problem.calibration_batches, quant)
    return problem, model, layers, table


def fitness_of(error="f_cos", as_dict=False, batches=None, **problem_args):
    run = Calls(as_dict)
    problem, model, layers, table = parts(run, **problem_args)
    run.count = 0
    return GenomeFitness(problem, model, table, layers, error, batches), run


def test_fp32_has_no_error_and_the_full_cost():
    fitness, _ = fitness_of()
    metrics = fitness(None)
    assert metrics["error"] == metrics["f_cos"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["f_bits"] == 32.0 * WEIGHTS
    assert metrics["relative_cost"] == metrics["compression"] == 1.0
    assert metrics["avg_weight_bits"] == 32.0


def test_cost_and_error_follow_the_genome():
    fitness, _ = fitness_of()
    w4, w8 = fitness([4, 4]), fitness([8, 8])
    mixed = fitness([(8, 8), 4])
    assert w4["f_bits"] == 4.0 * WEIGHTS and w8["f_bits"] == 8.0 * WEIGHTS
    assert mixed["f_bits"] == 8.0 * CONV_WEIGHTS + 4.0 * FC_WEIGHTS
    assert mixed["avg_weight_bits"] == mixed["f_bits"] / WEIGHTS
    assert w4["error"] > w8["error"] > 0
    assert w4["error"] == w4["f_cos"]
    assert fitness(None)["error"] < 1e-12  # switching back restores FP32


def test_a_genome_of_the_wrong_length_or_width_is_a_user_error():
    fitness, _ = fitness_of()
    with pytest.raises(UserError, match="genome has 1 genes"):
        fitness([4])
    with pytest.raises(UserError, match="gene 2 is not one of"):
        fitness([2, 4])


def test_fp32_references_are_made_once_then_one_pass_per_genome():
    fitness, run = fitness_of()
    assert run.count == 2  # the two fitness batches, at construction
    fitness([4, 4])
    fitness([8, 4])
    assert run.count == 2 + 2 * 2


def test_the_error_may_be_a_problem_metric_and_task_metrics_join():
    fitness, _ = fitness_of(
        error="max_abs", error_metrics=max_abs, task_metric=batch_count
    )
    fp32, w4 = fitness(None), fitness([4, 4])
    assert fp32["max_abs"] == fp32["error"] == 0.0
    assert w4["error"] == w4["max_abs"] > 0
    assert w4["f_cos"] > 0  # tensor outputs: f_cos is computed too
    assert (w4["batches"], w4["samples"]) == (2.0, 8.0)


def test_an_unknown_error_metric_names_the_available_ones():
    with pytest.raises(
        UserError, match=r"'f_box' is not one of \['f_cos', 'max_abs'\]"
    ):
        fitness_of(error="f_box", error_metrics=max_abs)


def test_outputs_that_are_not_tensors_have_no_f_cos():
    with pytest.raises(UserError, match=r"'f_cos' is not one of \['max_abs'\]"):
        fitness_of(as_dict=True, error_metrics=max_abs)
    fitness, _ = fitness_of(error="max_abs", as_dict=True, error_metrics=max_abs)
    metrics = fitness([4, 4])
    assert "f_cos" not in metrics and metrics["error"] == metrics["max_abs"] > 0


def test_batches_given_replace_the_fitness_batches():
    held_out = make_batches(3, 3)
    fitness, run = fitness_of(batches=held_out, task_metric=batch_count)
    assert fitness.batches is held_out and run.count == 3
    metrics = fitness([8, 8])
    assert (metrics["batches"], metrics["samples"]) == (3.0, 12.0)
    outputs, configs = fitness.outputs([8, 4])
    assert len(outputs) == 3 and configs == [(8, 8), (4, 8)]


def test_scoring_scores_as_the_search_does_then_unwraps_the_model():
    problem, model, layers, table = parts(Calls())
    batches = make_batches(3, 2)  # as validation batches would be
    with torch.no_grad():
        fp32 = [model(batch) for batch in batches]
    threads = torch.get_num_threads()
    config = parse_config(
        {"problem": {"name": "tiny"}, "evaluator": {"threads_per_worker": 1}}
    )
    with scoring(problem, model, table, layers, config, batches) as score:
        w4 = score([(4, 8), (4, 8)])
        assert torch.get_num_threads() == threads  # only attempts run on one thread
    with torch.no_grad():  # the quantizer is off the model
        assert all(torch.equal(model(b), r) for b, r in zip(batches, fp32))
    expected = GenomeFitness(problem, model, table, layers, "f_cos", batches)
    assert w4["error"] == pytest.approx(expected([4, 4])["error"], rel=1e-6)
    assert w4["error"] > 0


def test_compiling_a_problem_that_says_it_cannot_be_is_refused():
    problem, model, layers, table = parts(Calls(), compilable=False)
    with pytest.raises(UserError, match="problem tiny is not one torch.compile runs"):
        GenomeFitness(problem, model, table, layers, compiled=True)
    assert not getattr(model, WRAPPED, False)


def test_compiling_routed_attention_is_refused():
    problem, model, layers, table = parts(Calls())
    setattr(model, DISCOVERED, ("0.matmul_0",))
    with pytest.raises(UserError, match="layers.attention: off"):
        GenomeFitness(problem, model, table, layers, compiled=True)


def test_an_unknown_error_metric_leaves_the_model_unwrapped():
    problem, model, layers, table = parts(Calls())
    with pytest.raises(UserError, match="error metric 'nope'"):
        GenomeFitness(problem, model, table, layers, "nope")
    assert not getattr(model, WRAPPED, False)


@pytest.mark.slow
def test_the_compiled_mode_scores_as_the_eager_one():
    eager = fitness_of()[0]
    problem, model, layers, table = parts(Calls())
    compiled = GenomeFitness(problem, model, table, layers, compiled=True)
    assert compiled(None)["error"] == pytest.approx(0.0, abs=1e-12)
    for genome in ([4, 4], [8, 4], [(8, 8), (4, 8)]):
        expected, got = eager(genome), compiled(genome)
        assert got["f_bits"] == expected["f_bits"]
        assert got["error"] == pytest.approx(expected["error"], rel=1e-2, abs=1e-9)
