"""The NSGA-II loop: pymoo asks for genomes, the archive or the evaluator answers, pymoo is told.

Resume is exact. What pymoo's next generation depends on is the surviving population
in its order, the rank and crowding that tournament selection reads, and the
algorithm's random generator; a checkpoint holds all three after every generation.
Results finished before a crash come back from the archive, so the replayed generation
sees the same objectives without paying for them again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.problems.static import StaticProblem

from evoquant import __version__
from evoquant.archive import FAILED, Archive
from evoquant.checkpoint import Checkpoint, write_checkpoint
from evoquant.config import RunConfig, SearchConfig
from evoquant.errors import UserError
from evoquant.evaluate.protocol import GenomeEvaluator
from evoquant.operators import UniformPlusRandomSampling
from evoquant.registry import CROSSOVERS, MUTATIONS, UnknownName, lookup
from evoquant.rundir import CHECKPOINT_DIR, RunRecord
from evoquant.seeding import seed_rows
from evoquant.sensitivity import Sensitivity, measure_sensitivity, probe_genomes
from evoquant.space import SearchSpace
from evoquant.surrogate import ErrorSurrogate, screen

WORST = 1e30
"""The objective value of a failed genome: worse than anything real, yet finite for pymoo."""

log = logging.getLogger(__name__)

OnGeneration = Callable[[int, list[list[int]], np.ndarray, tuple[int, int]], None]


def offspring_for(search: SearchConfig, workers: int) -> int:
    """New genomes per generation: ``offspring`` as set, ``pop_size`` when unset, and
    for ``workers`` the fewest whole waves of ``workers`` that hold ``pop_size``, so
    no generation ends on a short last wave while the other workers wait.

    Rounding up, not down: one wave of 64 idles as much waiting for its slowest
    genome as 100 genomes do on their short second wave (``bench/idle_workers.py``).
    """
    if search.offspring is None:
        return search.pop_size
    if search.offspring == "workers":
        return -(-search.pop_size // workers) * workers
    return search.offspring


def resolve_offspring(config: RunConfig, workers: int) -> RunConfig:
    """``config`` with ``search.offspring: workers`` made a number for ``workers``
    workers: the run stores the number, so a resume on another cluster continues the
    same way."""
    if config.search.offspring != "workers":
        return config
    search = config.search.model_copy(
        update={"offspring": offspring_for(config.search, workers)}
    )
    return config.model_copy(update={"search": search})


def build_algorithm(config: RunConfig, space: SearchSpace) -> NSGA2:
    """pymoo's NSGA-II (rank-and-crowding survival, binary tournament, no duplicates) with our operators.

    ``search.offspring`` must be a number or unset here (``resolve_offspring``).
    """
    search = config.search
    if search.offspring == "workers":
        raise ValueError("search.offspring 'workers' is resolved before the search")
    if not search.objectives or len(set(search.objectives)) != len(search.objectives):
        raise UserError("search.objectives must name distinct metrics, at least one")
    if search.mutation_prob is not None and not 0 < search.mutation_prob <= 1:
        raise UserError("search.mutation_prob must be in (0, 1]")
    if not 0 <= search.crossover_prob <= 1:
        raise UserError("search.crossover_prob must be in [0, 1]")
    try:
        mutation = lookup(MUTATIONS, search.mutation)
        crossover = lookup(CROSSOVERS, search.crossover)
    except UnknownName as error:
        raise UserError(f"search: {error}") from None
    return NSGA2(
        pop_size=search.pop_size,
        n_offsprings=offspring_for(search, 1),
        sampling=UniformPlusRandomSampling(space.uniform_genomes()),
        crossover=crossover(space.module_boundaries(), prob=search.crossover_prob),
        mutation=mutation(prob_var=search.mutation_prob),
        eliminate_duplicates=True,
        seed=config.seed,
    )


def uniform_label(space: SearchSpace, bits: list[int]) -> str:
    """``W4A8``: how a uniform genome was made, read off a layer the search is free to
    set; fixed layers keep their own width, and the label says so."""
    configs = space.bit_configs(bits)
    free = [
        c for layer, c in zip(space.layers, configs) if layer.name not in space.fixed
    ]
    weights, activations = (free or configs)[0]
    return f"W{weights}A{activations}" + (" (fixed layers kept)" if space.fixed else "")


class Search:
    """NSGA-II over a ``SearchSpace``: every result archived, every generation checkpointed.

    What it works with is given to it, as pymoo's own ``Algorithm`` takes its
    ``evaluator``, ``archive`` and ``callback``: the ``evaluator`` scores bit lists, the
    ``archive`` (bound to ``record``'s run) keeps every result, checkpoints go to
    ``run_dir``'s checkpoint folder, and ``checkpoint``, when given, is where a resumed
    run continues. The caller (``evoquant.driver``) creates or resumes the run record.
    Generation 0 is the initial population; ``on_generation(gen, genomes, F, counts)``
    is called after each generation's checkpoint is on disk, ``counts`` being the
    genomes evaluated and those served from the archive in that generation (the
    sensitivity probes are no generation's genomes: they are logged on their own).
    """

    def __init__(
        self,
        config: RunConfig,
        space: SearchSpace,
        evaluator: GenomeEvaluator,
        archive: Archive,
        run_dir: str | Path,
        record: RunRecord,
        *,
        checkpoint: Checkpoint | None = None,
        on_generation: OnGeneration | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.space = space
        self.evaluator = evaluator
        self.archive = archive
        self.record = record
        self.on_generation = on_generation
        self.objectives = tuple(config.search.objectives)
        self.pymoo_problem = Problem(
            n_var=space.n_genes,
            n_obj=len(self.objectives),
            xl=space.xl,
            xu=space.xu,
            vtype=int,
        )
        self.algorithm = build_algorithm(config, space)
        self.algorithm.setup(self.pymoo_problem, termination=NoTermination())
        self.counts = (0, 0)
        self.probes = 0
        self.sensitivity: Sensitivity | None = None
        if checkpoint is not None:
            self._restore(checkpoint)

    @property
    def generation(self) -> int:
        """The last completed generation, -1 before the initial population is evaluated."""
        return self.algorithm.n_iter - 2 if self.algorithm.is_initialized else -1

    def run(self, generations: int | None = None) -> tuple[list[list[int]], np.ndarray]:
        """Evolve until ``generations`` populations (default: the config's) are complete.

        Generation 0 is the initial population, so the last one is ``generations - 1``;
        100 x 50 is 5,000 evaluations, as in the thesis. Returns the final population:
        genomes as bit lists and their objectives.
        """
        last = self._last(generations)
        if self._needs_sensitivity(last):
            self.sensitivity = self.measure_sensitivity()
            self.probes = self.probes or self.sensitivity.probes
            if self.generation < 0 and self.config.search.seeding.enabled:
                self._seed_generation_zero()
        while self.generation < last:
            infills = self._ask()
            if infills is None or len(infills) == 0:
                log.warning(
                    "generation %d: mating found no new genome, stopping",
                    self.generation + 1,
                )
                break
            F = self._objectives(infills.get("X"), self.generation + 1)
            self.algorithm.evaluator.eval(
                StaticProblem(self.pymoo_problem, F=F), infills
            )
            self.algorithm.tell(infills=infills)
            self._finish_generation()
        return self.population()

    def _last(self, generations: int | None) -> int:
        """The last generation ``run(generations)`` completes."""
        return (
            self.config.search.generations if generations is None else generations
        ) - 1

    def _needs_sensitivity(self, last: int) -> bool:
        """Seeding and screening start from the probes, measured again on a resume."""
        search = self.config.search
        return self.generation < last and (
            search.seeding.enabled or search.screening.enabled
        )

    def pending_probes(self, generations: int | None = None) -> int:
        """How many sensitivity probes ``run(generations)`` will evaluate: those it
        needs that the archive lacks (a progress display counts them in advance)."""
        if not self._needs_sensitivity(self._last(generations)):
            return 0
        probes = probe_genomes(self.space, self.config.search.seeding.base_bits)
        return len(probes) - len(self.archive.get_many(probes))

    def population(self) -> tuple[list[list[int]], np.ndarray]:
        """The current population (bit lists) and its objectives, in pymoo's order."""
        pop = self.algorithm.pop
        if pop is None:
            return [], np.empty((0, len(self.objectives)))
        return [self.space.to_bits(x) for x in pop.get("X")], pop.get("F")

    def close(self) -> None:
        """Close the archive (the run's, handed over by whoever opened it)."""
        self.archive.close()

    def measure_sensitivity(self, base_bits: int | None = None) -> Sensitivity:
        """The per-layer probes (``evoquant.sensitivity``), scored as generation 0's
        genomes are: from the archive where they are there, else evaluated and archived."""
        bits = self.config.search.seeding.base_bits if base_bits is None else base_bits
        generation_counts, self.counts = self.counts, (0, 0)
        model = measure_sensitivity(
            self.space, bits, lambda genomes: self._metrics(genomes, 0), self.objectives
        )
        (evaluated, cached), self.counts = self.counts, generation_counts
        log.info(
            "sensitivity: %d probes, %d evaluated, %d from the archive",
            evaluated + cached,
            evaluated,
            cached,
        )
        return model

    def _seed_generation_zero(self) -> None:
        """Generation 0 starts with the uniform configurations and the additive front."""
        seeding = self.config.search.seeding
        rows = seed_rows(
            self.sensitivity,
            self.space.uniform_genomes(),
            self.config.search.pop_size,
            seeding.share,
        )
        self.algorithm.initialization.sampling = UniformPlusRandomSampling(rows)
        log.info("generation 0: %d seeded genomes", len(rows))

    def _ask(self):
        """The next genomes to evaluate: pymoo's offspring, or with screening the most
        promising of ``factor`` times as many (all drawn from the algorithm's generator)."""
        screening = self.config.search.screening
        algorithm = self.algorithm
        if not algorithm.is_initialized or not screening.enabled:
            return algorithm.ask()
        wanted = algorithm.n_offsprings
        algorithm.n_offsprings = wanted * screening.factor
        try:
            candidates = algorithm.ask()
        finally:
            algorithm.n_offsprings = wanted
        if candidates is None or len(candidates) <= wanted:
            return candidates
        records = self._archived_so_far()
        known = {tuple(record["genome"]) for record in records}
        X = candidates.get("X")
        new = [i for i, x in enumerate(X) if tuple(self.space.to_bits(x)) not in known]
        if len(new) <= wanted:
            return candidates[new] if new else candidates[:wanted]
        ok = [record for record in records if record["status"] == "ok"]
        levels = np.array([self.space.from_bits(record["genome"]) for record in ok])
        F = np.array([self._objective_row(record["metrics"]) for record in ok])
        surrogate = ErrorSurrogate(self.sensitivity).fit(levels, F[:, 1])
        cost, _ = self.sensitivity.predict(X[new])
        predicted = np.column_stack([cost, surrogate.predict(X[new])])
        chosen = screen(
            predicted, F, wanted, screening.exploration, algorithm.random_state
        )
        return candidates[np.asarray(new)[chosen]]

    def _archived_so_far(self) -> list[dict[str, Any]]:
        """Archive rows up to the last complete generation, sorted by genome: exactly
        what an uninterrupted run saw, whatever a crash left of the next generation."""
        rows = [
            record
            for record in self.archive.records()
            if record["generation"] <= self.generation
        ]
        return sorted(rows, key=lambda record: record["genome"])

    def _metrics(
        self, genomes: list[list[int]], generation: int
    ) -> dict[tuple[int, ...], dict[str, Any]]:
        """Metrics of genomes: archived ones read back, the rest evaluated once each."""
        results = self.archive.get_many(genomes)
        missing = [
            list(g) for g in dict.fromkeys(map(tuple, genomes)) if g not in results
        ]
        for bits, metrics in self.evaluator.evaluate(missing) if missing else ():
            metrics = self._checked(bits, metrics)
            self.archive.put(bits, metrics, generation)
            results[tuple(bits)] = metrics
        unanswered = [g for g in missing if tuple(g) not in results]
        if unanswered:
            raise RuntimeError(f"the evaluator returned no result for {unanswered[0]}")
        evaluated, cached = self.counts
        self.counts = (evaluated + len(missing), cached + len(genomes) - len(missing))
        return results

    def _objectives(self, X: np.ndarray, generation: int) -> np.ndarray:
        """F for a batch of genomes, through the archive (``_metrics``)."""
        genomes = [self.space.to_bits(x) for x in X]
        results = self._metrics(genomes, generation)
        return np.array([self._objective_row(results[tuple(g)]) for g in genomes])

    def _checked(self, bits: list[int], metrics: Mapping[str, Any]) -> dict[str, Any]:
        """The metrics, marked failed when an objective or the error is NaN or infinite.

        Whichever back-end scored it, a genome whose model produced NaN measured
        nothing: it is archived as failed (its numbers kept beside the reason), so no
        front, hypervolume or pick ever sees it.
        """
        names = dict.fromkeys([*self.objectives, "error"])
        bad = [
            f"{name}: {metrics[name]}"
            for name in names
            if isinstance(metrics.get(name), Real) and not math.isfinite(metrics[name])
        ]
        if FAILED in metrics or not bad:
            return dict(metrics)
        reason = f"non-finite {', '.join(bad)}"
        log.warning("genome %s: %s, archived as failed", bits, reason)
        return dict(metrics) | {FAILED: reason}

    def _objective_row(self, metrics: Mapping[str, Any]) -> list[float]:
        if FAILED in metrics:
            return [WORST] * len(self.objectives)
        row = []
        for name in self.objectives:
            if name not in metrics:
                raise UserError(
                    f"objective {name!r} is not a metric the evaluator returns "
                    f"({', '.join(sorted(metrics))})"
                )
            value = float(metrics[name])
            row.append(value if math.isfinite(value) else WORST)
        return row

    def _finish_generation(self) -> None:
        genomes, F = self.population()
        pop = self.algorithm.pop
        checkpoint = Checkpoint(
            generation=self.generation,
            genomes=genomes,
            objectives=F.tolist(),
            rank=pop.get("rank").astype(int).tolist(),
            crowding=pop.get("crowding").astype(float).tolist(),
            rng_state=self.algorithm.random_state.bit_generator.state,
            n_eval=self.algorithm.evaluator.n_eval,
            config_digest=self.config.digest(),
            run_id=self.record.run_id,
            probes=self.probes,
        )
        self.archive.put_population(self.generation, genomes)
        write_checkpoint(self.run_dir / CHECKPOINT_DIR, checkpoint)
        if self.on_generation is not None:
            self.on_generation(self.generation, genomes, F, self.counts)
        evaluated, cached = self.counts
        self.counts = (0, 0)
        log.info(
            "generation %d: %d evaluated, %d from the archive, %d non-dominated in "
            "the population",
            self.generation,
            evaluated,
            cached,
            int(np.sum((pop.get("rank") == 0) & (F < WORST).all(axis=1))),
        )

    def _restore(self, checkpoint: Checkpoint) -> None:
        """Put pymoo back where it stood after ``checkpoint.generation``'s survival."""
        if checkpoint.version != __version__:
            log.warning(
                "checkpoint written by evoquant %s, this is %s: the continuation may differ",
                checkpoint.version,
                __version__,
            )
        X = np.array([self.space.from_bits(bits) for bits in checkpoint.genomes])
        F = np.array(checkpoint.objectives, dtype=float)
        if F.shape != (len(X), len(self.objectives)):
            raise UserError(
                f"checkpoint of generation {checkpoint.generation} has objectives of shape "
                f"{F.shape}, this config needs {len(self.objectives)} per genome"
            )
        pop = Population.new("X", X)
        Evaluator().eval(StaticProblem(self.pymoo_problem, F=F), pop)
        pop.set(
            "rank", np.array(checkpoint.rank), "crowding", np.array(checkpoint.crowding)
        )
        algorithm = self.algorithm
        algorithm.pop = pop
        algorithm.is_initialized = True
        algorithm.n_iter = checkpoint.generation + 2
        algorithm.evaluator.n_eval = checkpoint.n_eval
        self.probes = checkpoint.probes
        algorithm.random_state.bit_generator.state = checkpoint.rng_state
        algorithm._set_optimum()
