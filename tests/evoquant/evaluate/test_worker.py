"""What a Ray worker runs, in this process: built once from plain values, one genome a call.

``EvaluationWorker`` is plain Python (``ray_backend`` makes it an actor), so its
contract is checked here without Ray: the table arrives as arrays, a config mistake is
reported by ``ping`` rather than raised, a failing genome is a result, a bug is raised.
"""

import os
import pickle
import socket

import pytest
import torch
from torch import nn

from evoquant.archive import FAILED
from evoquant.config import AlphaConfig, QuantConfig, parse_config
from evoquant.errors import UserError
from evoquant.evaluate.shared_table import to_arrays
from evoquant.evaluate.worker import EvaluationWorker, FitnessFactory, WorkerState
from evoquant.pipeline import build_model_and_layers
from evoquant.quant.layers import find_layers
from evoquant.quant.table import QuantTable, build_quant_table
from problems.registry import build_problem

DIGITS_ARGS = {"batch_size": 16, "calibration_batches": 1, "fitness_batches": 1}
QUANT = QuantConfig(bit_configs=[(4, 8), (8, 8)], alpha=AlphaConfig(enabled=False))


def run(model, batch):
    return model(batch)


@pytest.fixture(scope="module")
def table() -> QuantTable:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4)).eval()
    batches = [torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(1))]
    return build_quant_table(model, find_layers(model), run, batches, QUANT)


@pytest.fixture
def keep_threads():
    """The worker sets the process's thread count, as it owns its process: undo it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


class Recorder:
    """A fitness factory that keeps the table it got and answers with the thread count."""

    def __init__(self):
        self.tables = []

    def __call__(self, table):
        self.tables.append(table)

        def fitness(configs):
            if configs[0] == (4, 8):
                raise RuntimeError("NaN in the output")
            if configs[0] == (2, 8):
                raise KeyError("a bug")
            return {"error": 0.5, "threads": torch.get_num_threads()}

        return fitness


def test_the_fitness_is_built_once_from_the_table_as_tensors(table, keep_threads):
    factory = Recorder()
    worker = EvaluationWorker(factory, to_arrays(table), 1)
    assert len(factory.tables) == 1
    entries = factory.tables[0].entries
    assert entries.keys() == table.entries.keys()
    assert all(isinstance(entry.weight, torch.Tensor) for entry in entries.values())
    assert factory.tables[0].bit_configs == table.bit_configs
    assert worker.evaluate([(8, 8)]) == {"error": 0.5, "threads": 1}
    worker.evaluate([(8, 8)])
    assert len(factory.tables) == 1


def test_ping_says_where_the_worker_runs(table, keep_threads):
    state = EvaluationWorker(Recorder(), to_arrays(table), 1).ping()
    assert state == WorkerState(os.getpid(), socket.gethostname(), None)


def test_every_genome_runs_at_the_workers_thread_count(table, keep_threads):
    torch.set_num_threads(1)
    worker = EvaluationWorker(Recorder(), to_arrays(table), 2)
    assert torch.get_num_threads() == 2  # the process is the worker's
    torch.set_num_threads(1)
    assert worker.evaluate([(8, 8)])["threads"] == 2
    assert torch.get_num_threads() == 1


def test_a_genome_that_raises_a_failure_is_a_failed_result_a_bug_is_raised(
    table, keep_threads
):
    worker = EvaluationWorker(Recorder(), to_arrays(table), 1)
    assert worker.evaluate([(4, 8)]) == {FAILED: "RuntimeError: NaN in the output"}
    with pytest.raises(KeyError, match="a bug"):
        worker.evaluate([(2, 8)])


def test_a_config_mistake_is_reported_by_ping_not_raised(table, keep_threads):
    def refuse(table):
        raise UserError("digits weights not found: none.safetensors")

    state = EvaluationWorker(refuse, to_arrays(table), 1).ping()
    assert state.error == "digits weights not found: none.safetensors"
    assert state.pid == os.getpid()


def test_any_other_error_while_building_is_raised(table, keep_threads):
    def broken(table):
        raise ZeroDivisionError("bug in the problem")

    with pytest.raises(ZeroDivisionError, match="bug in the problem"):
        EvaluationWorker(broken, to_arrays(table), 1)


@pytest.fixture(scope="module")
def digits():
    """The digits problem's layers and table, as the driver hands them to workers."""
    problem = build_problem("digits", DIGITS_ARGS)
    model = problem.build_model().eval()
    layers = find_layers(model)
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches, QUANT
    )
    return layers, table


def test_the_factory_rebuilds_the_problem_with_the_drivers_layers(digits):
    layers, table = digits
    factory = FitnessFactory("digits", DIGITS_ARGS, layers, "f_cos")
    assert pickle.loads(pickle.dumps(factory)) == factory  # it travels to workers
    fitness = factory(table)
    assert fitness.layers == layers and fitness.error == "f_cos"
    assert len(fitness.batches) == 1 and len(fitness.batches[0][1]) == 16
    fp32, w4 = fitness(None), fitness([4] * len(layers))
    assert fp32["error"] < 1e-12 and w4["error"] > 0
    assert w4["f_bits"] == 4.0 * sum(layer.num_weights for layer in layers)
    assert set(fp32) >= {"f_cos", "top1", "relative_cost"}


def test_a_factory_a_worker_cannot_build_reports_one_line(digits, keep_threads):
    layers, table = digits
    unknown = FitnessFactory("no_such_problem", {}, layers, "f_cos")
    with pytest.raises(UserError, match="unknown problem 'no_such_problem'"):
        unknown(table)
    wrong_error = FitnessFactory("digits", DIGITS_ARGS, layers, "f_box")
    state = EvaluationWorker(wrong_error, to_arrays(table), 1).ping()
    assert state.error is not None and "'f_box' is not one of" in state.error


def test_the_factory_finds_the_attention_layers_the_driver_found(keep_threads):
    config = parse_config(
        {
            "problem": {"name": "digits_vit", "args": DIGITS_ARGS},
            "quant": {"bit_configs": [[4, 8], [8, 8]], "alpha": {"enabled": False}},
        }
    )
    problem, model, layers = build_model_and_layers(config)
    attention = [layer for layer in layers if layer.kind == "matmul"]
    assert len(attention) == 6
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches, QUANT
    )
    fitness = FitnessFactory("digits_vit", DIGITS_ARGS, layers, "f_cos")(table)
    only_attention = [4 if layer in attention else None for layer in layers]
    assert fitness(None)["error"] < 1e-12 and fitness(only_attention)["error"] > 0
    off = FitnessFactory("digits_vit", DIGITS_ARGS, layers, "f_cos", "off")
    with pytest.raises(UserError, match="table names layers the model lacks"):
        off(table)
