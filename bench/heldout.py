"""Do activation ranges generalise? Error on calibration, fitness and held-out samples.

For every activation-range option (``quant.activations``: granularity x estimator, under
the thesis scheme, and the estimators under the tensorrt scheme, which is per tensor)
it calibrates one QuantTable (alpha on, as by default) and scores uniform W2A8, W4A8,
W8A8 and W16A16 on three disjoint sets of samples:

* ``calibration``: the samples the ranges came from (what a search whose fitness
  batches are calibration batches would minimise),
* ``search``: the fitness batches (disjoint from calibration: what a search minimises),
* ``heldout``: the validation batches (disjoint from both).

Problems: the digits CNN (shipped weights), bevfusion_mini (shipped weights, F_box) and
a randomly initialised 6-layer BERT built from a ``transformers.BertConfig`` (no
download), mean-pooled into sentence embeddings of synthetic Zipf-distributed tokens
with random lengths (f_cos). Writes ``bench/results/heldout.json``.
"""

from __future__ import annotations

import json
import math
import time
from functools import partial
from pathlib import Path

import torch
from hardware import hardware
from problem_bench import problem_bench_args, write_results
from torch import Tensor, nn

from evoquant.config import ActivationConfig, QuantConfig
from evoquant.evaluate.fitness import GenomeFitness
from evoquant.quant.layers import find_layers
from evoquant.quant.table import build_quant_table
from problems.base import Problem, role_overlaps
from problems.bevfusion.mini.problem import bevfusion_mini_problem
from problems.cnn.digits import digits_problem

RESULTS = Path(__file__).parent / "results" / "heldout.json"
CONFIGS = {"W2A8": (2, 8), "W4A8": (4, 8), "W8A8": (8, 8), "W16A16": (16, 16)}
OPTIONS = {
    f"{scheme} {granularity} {estimator}": (scheme, granularity, estimator)
    for scheme, granularities in (
        ("thesis", ("per_channel", "per_tensor")),
        ("tensorrt", ("per_tensor",)),
    )
    for granularity in granularities
    for estimator in ("minmax", "percentile", "mse")
}
ROLES = {
    "calibration": "calibration_batches",
    "search": "fitness_batches",
    "heldout": "validation_batches",
}
VOCAB = 2000


def sentences(count: int, batch_size: int, seq_len: int, seed: int) -> list[dict]:
    """Token batches: Zipf-distributed ids (as words are), random lengths, padding."""
    generator = torch.Generator().manual_seed(seed)
    zipf = 1.0 / torch.arange(1, VOCAB - 3, dtype=torch.float64)
    batches = []
    for _ in range(count):
        ids = torch.multinomial(
            zipf, batch_size * seq_len, replacement=True, generator=generator
        ).view(batch_size, seq_len)
        ids += 4  # 0..3: [PAD], [UNK], [CLS], [SEP]
        lengths = torch.randint(8, seq_len + 1, (batch_size,), generator=generator)
        mask = (torch.arange(seq_len) < lengths.unsqueeze(1)).long()
        ids[:, 0] = 2
        ids[torch.arange(batch_size), lengths - 1] = 3
        batches.append({"input_ids": ids * mask, "attention_mask": mask})
    return batches


def run_sentence_encoder(model: nn.Module, batch: dict) -> Tensor:
    """Mean of the last hidden states over the real tokens: a sentence embedding."""
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1)


def build_bert(
    seed: int, hidden_size: int = 128, heads: int = 4, intermediate_size: int = 512
) -> nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=hidden_size,
        num_hidden_layers=6,
        num_attention_heads=heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BertModel(config, add_pooling_layer=False).eval()


def bert_problem(
    batch_size: int = 16, batches: int = 4, seq_len: int = 32, **shape: int
) -> Problem:
    """A random 6-layer BERT sentence encoder (``shape``: ``build_bert``'s sizes); each
    role has its own token seed."""
    return Problem(
        name="bert_random",
        build_model=partial(build_bert, seed=0, **shape),
        calibration_batches=sentences(batches, batch_size, seq_len, seed=1),
        fitness_batches=sentences(batches, batch_size, seq_len, seed=2),
        validation_batches=sentences(batches, batch_size, seq_len, seed=3),
        run=run_sentence_encoder,
    )


PROBLEMS = {
    "digits": (digits_problem, "f_cos"),
    "bevfusion_mini": (partial(bevfusion_mini_problem, validation_batches=16), "f_box"),
    "bert_random": (bert_problem, "f_cos"),
}
"""Default arguments but bevfusion_mini's 64 validation scenes: F_box on 16 scenes
varies by a factor of two from one set of scenes to the next."""


def option_rows(problem: Problem, error: str, option: tuple[str, str, str]) -> dict:
    """Calibrate with one activation option; error of each uniform config per role."""
    scheme, granularity, estimator = option
    bit_configs = list(CONFIGS.values())
    quant = QuantConfig(
        scheme=scheme,
        bit_configs=bit_configs,
        activations=ActivationConfig(granularity=granularity, estimator=estimator),
    )
    model = problem.build_model()
    layers = find_layers(model)
    start = time.perf_counter()
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches, quant
    )
    rows: dict = {"calibration_seconds": round(time.perf_counter() - start, 1)}
    errors: dict = {name: {} for name in CONFIGS}
    for role, attribute in ROLES.items():
        fitness = GenomeFitness(
            problem, model, table, layers, error, getattr(problem, attribute)
        )
        for name, config in zip(CONFIGS, bit_configs):
            errors[name][role] = float(fitness([config] * len(layers))["error"])
        fitness.quantized.remove()
    for name, row in errors.items():
        row["heldout_over_search"] = ratio(row["heldout"], row["search"])
        row["heldout_over_calibration"] = ratio(row["heldout"], row["calibration"])
    rows["configs"] = errors
    return rows


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b > 0 else None


def best_options(results: dict) -> dict:
    """Per problem and config, the thesis-scheme option with the lowest held-out error."""
    best = {}
    for name, problem in results["problems"].items():
        thesis = {k: v for k, v in problem["options"].items() if k.startswith("thesis")}
        best[name] = {
            config: min(thesis, key=lambda o: thesis[o]["configs"][config]["heldout"])
            for config in CONFIGS
        }
    return best


THESIS = "thesis per_channel minmax"
"""The thesis's calibration (evoquant 0.2's default), the baseline of the summary."""


def summary(results: dict) -> dict:
    """Per thesis-scheme option, its held-out error over the thesis's, across every
    problem and uniform config: the geometric mean, the best and the worst ratio."""
    rows = {}
    options = [o for o in OPTIONS if o.startswith("thesis")]
    for option in options:
        ratios = [
            problem["options"][option]["configs"][c]["heldout"]
            / problem["options"][THESIS]["configs"][c]["heldout"]
            for problem in results["problems"].values()
            for c in CONFIGS
        ]
        rows[option] = {
            "geometric_mean": round(math.prod(ratios) ** (1 / len(ratios)), 3),
            "best": round(min(ratios), 4),
            "worst": round(max(ratios), 3),
        }
    return rows


def main() -> None:
    args = problem_bench_args(__doc__, PROBLEMS, RESULTS)
    results: dict = {
        "hardware": hardware(torch_threads=args.threads),
        "alpha": QuantConfig().alpha.model_dump(),
        "percentile": ActivationConfig().percentile,
        "problems": {},
    }
    for name in args.problems:
        factory, error = PROBLEMS[name]
        problem = factory()
        assert not role_overlaps(problem), f"{name}: roles share samples"
        entry = {
            "error": error,
            "batches": {role: len(getattr(problem, a)) for role, a in ROLES.items()},
            "options": {},
        }
        results["problems"][name] = entry
        for label, option in OPTIONS.items():
            entry["options"][label] = option_rows(problem, error, option)
            configs = entry["options"][label]["configs"]
            print(
                f"{name:15s} {label:30s}",
                "  ".join(
                    f"{c} {r['calibration']:.3g}/{r['search']:.3g}/{r['heldout']:.3g}"
                    for c, r in configs.items()
                ),
                flush=True,
            )
    results["lowest_heldout_thesis_option"] = best_options(results)
    results["heldout_over_thesis"] = summary(results)
    print(json.dumps(results["lowest_heldout_thesis_option"], indent=1))
    print("held-out error / thesis per_channel minmax:")
    print(json.dumps(results["heldout_over_thesis"], indent=1))
    write_results(args.out, results)


if __name__ == "__main__":
    main()
