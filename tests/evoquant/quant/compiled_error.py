"""Prints a tiny fitness's error for one genome, eager and compiled (run as a script by
test_traced.py, one CPU capability per process)."""

import importlib.util
import json
import sys
from pathlib import Path

import torch

from evoquant.evaluate.fitness import GenomeFitness

path = Path(__file__).parents[1] / "evaluate" / "test_fitness.py"
spec = importlib.util.spec_from_file_location("fitness_tests", path)
tests = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tests)
torch.use_deterministic_algorithms(True, warn_only=True)  # as every search sets it
errors = {}
for compiled in (False, True):
    problem, model, layers, table = tests.parts(tests.Calls())
    fitness = GenomeFitness(problem, model, table, layers, compiled=compiled)
    errors[str(compiled)] = fitness(json.loads(sys.argv[1]))["error"]
print(json.dumps(errors))
