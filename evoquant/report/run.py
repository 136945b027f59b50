"""A run's reports redrawn from its state: per-generation plot, hypervolume, front, summary.

Reports are never read back: everything they show comes from the run file, the archive
and the checkpoints, so a missing, stale or damaged report is simply drawn again, and
a redrawn generation shows what it showed when it was new. Every report's front is the
archive front (`ArchiveFront`): a genome that survival dropped stays on it. The latest
reports also show each point's held-out error, where ``validation.json`` has it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evoquant.archive import FAILED, Archive
from evoquant.atomic import write_text_atomic
from evoquant.checkpoint import load_latest
from evoquant.errors import UserError
from evoquant.report.front import (
    Archived,
    ArchiveFront,
    archived_points,
    knee_point,
    successful,
    with_heldout,
    write_front,
)
from evoquant.report.heldout import heldout_errors, load_validation
from evoquant.report.hypervolume import (
    NO_REFERENCE,
    points_hypervolume,
    reference_point,
)
from evoquant.report.plots import plot_generation, plot_hypervolume
from evoquant.report.summary import write_summary
from evoquant.rundir import (
    CHECKPOINT_DIR,
    GENERATION_PLOT,
    HYPERVOLUME_FILE,
    HYPERVOLUME_PLOT,
    PLOTS_DIR,
    RunRecord,
)
from evoquant.targets import BitConfig, ToConfigs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
log = logging.getLogger(__name__)

Populations = Mapping[int, Sequence[Sequence[int]]]


@dataclass(frozen=True)
class GenerationView:
    """What one generation's plot shows: its population, the archive front as of that
    generation, and the uniform configurations (label -> point) measured by then."""

    generation: int
    population: list[dict]
    front: list[dict]
    uniform: dict[str, dict]


class RunReport:
    """Writes everything a person looks at after each generation, from the run's state."""

    def __init__(
        self,
        run_dir: str | Path,
        archive: Archive,
        record: RunRecord,
        to_configs: ToConfigs | None = None,
    ):
        """``to_configs`` (``SearchSpace.bit_configs``) puts each front point's
        per-layer (weight, activation) bits in ``front.json``; without it the points
        carry their genes only."""
        self.run_dir = Path(run_dir)
        self.archive = archive
        self.record = record
        self.to_configs = to_configs
        self.gene_names = list(record.genes)
        self.uniform = dict(zip(record.uniform_labels, record.uniform_genomes))
        self.objectives = tuple(record.config.search.objectives)
        self.info = {
            "problem": record.config.problem.name,
            "layers": len(record.layers),
            "config digest": record.config_digest,
        }
        self.hv_history: dict[int, float] = {}
        self._front = ArchiveFront(self.objectives)
        self._heldout_errors: dict[tuple[int, ...], float] | None = None

    def views(
        self, populations: Populations, archived: Archived | None = None
    ) -> Iterator[GenerationView]:
        """Each generation's plot data, oldest first, from one read of the archive."""
        if archived is None:
            archived = archived_points(self.archive.records())
        for generation in sorted(populations):
            yield GenerationView(
                generation,
                successful(archived, populations[generation]),
                self._front.at(archived, generation),
                {
                    label: point
                    for label, point in self._uniform(archived, generation).items()
                    if FAILED not in point
                },
            )

    def _uniform(self, archived: Archived, generation: int) -> dict[str, dict]:
        """The uniform configurations (label -> point, failed ones too) evaluated by
        ``generation``."""
        found = {}
        for label, genome in self.uniform.items():
            entry = archived.get(tuple(genome))
            if entry is not None and entry[0] <= generation:
                found[label] = entry[1]
        return found

    def generation(self, generation: int, genomes: Sequence[Sequence[int]]) -> None:
        """Plot a generation just finished and bring the latest reports up to it."""
        earlier = {
            g: population
            for g, population in self.archive.populations().items()
            if g < generation and g not in self.hv_history
        }
        self._report(earlier | {generation: genomes}, lambda g: g == generation)

    def catch_up(self) -> int:
        """Draw what a crash left undrawn: missing or damaged plots, then the latest reports.

        Returns the number of generations the archive knows.
        """
        populations = self.archive.populations()
        self._report(populations, lambda g: not _is_png(self._plot_path(g)))
        return len(populations)

    def redraw(self) -> int:
        """Every generation the archive knows, oldest first; returns how many."""
        populations = self.archive.populations()
        self._report(populations, lambda g: True)
        return len(populations)

    def _plot_path(self, generation: int) -> Path:
        return self.run_dir / PLOTS_DIR / GENERATION_PLOT.format(generation)

    def _report(self, populations: Populations, replot: Callable[[int], bool]) -> None:
        """Hypervolume (and, where ``replot`` says, the plot) of every generation given,
        then front files and summary as of the last one."""
        if not populations:
            return
        archived = archived_points(self.archive.records())
        successes = successful(archived, self.uniform.values())
        reference = reference_point(successes)
        heldout = self._heldout()
        (self.run_dir / PLOTS_DIR).mkdir(exist_ok=True)
        for view in self.views(populations, archived):
            if reference is not None:
                self.hv_history[view.generation] = points_hypervolume(
                    view.front, reference
                )
            if view.generation == max(populations) and heldout:
                view = dataclasses.replace(
                    view,
                    front=[with_heldout(p, heldout) for p in view.front],
                    uniform={
                        k: with_heldout(p, heldout) for k, p in view.uniform.items()
                    },
                )
            if replot(view.generation):
                plot_generation(
                    self._plot_path(view.generation),
                    view.generation,
                    view.population,
                    view.front,
                    view.uniform,
                )
        self._latest(view, archived, heldout)

    def _heldout(self) -> dict[tuple[int, ...], float]:
        """Held-out errors from ``validation.json``, read once (only ``evoquant validate``
        and the end of a search write it, each with a report of its own); without a
        usable one the reports go on without them."""
        if self._heldout_errors is None:
            try:
                validation = load_validation(self.run_dir, self.record)
            except UserError as error:
                log.warning("reports without held-out errors: %s", error)
                validation = None
            self._heldout_errors = (
                {} if validation is None else heldout_errors(validation)
            )
        return self._heldout_errors

    def _latest(
        self,
        view: GenerationView,
        archived: Archived,
        heldout: Mapping[tuple[int, ...], float],
    ) -> None:
        generation, front = view.generation, view.front
        history = {g: v for g, v in sorted(self.hv_history.items()) if g <= generation}
        write_text_atomic(
            self.run_dir / HYPERVOLUME_FILE, json.dumps(history, indent=1)
        )
        plot_hypervolume(self.run_dir / PLOTS_DIR / HYPERVOLUME_PLOT, history)
        write_front(
            self.run_dir, front, self.gene_names, generation, self._configs(front)
        )
        info = self.info | {"generation": generation}
        info |= self._counts(archived, generation)
        info["hypervolume"] = (
            f"{history[generation]:.6g}"
            if generation in history
            else f"not measured: {NO_REFERENCE}"
        )
        uniform = self._uniform(archived, generation)
        write_summary(
            self.run_dir,
            front,
            knee_point(front, self.objectives) if front else None,
            {label: with_heldout(p, heldout) for label, p in uniform.items()},
            self.gene_names,
            info,
        )

    def _configs(self, front: Sequence[dict]) -> list[dict[str, BitConfig]] | None:
        """Each front point's per-layer configs; None where one cannot be resolved
        (a genome ``plot`` finds in no earlier ``front.json``)."""
        if self.to_configs is None:
            return None
        try:
            return [
                dict(zip(self.record.layers, self.to_configs(p["bits"]))) for p in front
            ]
        except KeyError:
            return None

    def _counts(self, archived: Archived, generation: int) -> dict[str, int]:
        """How many genomes the search asked for up to ``generation``, how many were
        evaluated, served from the archive (repeats) and failed.

        The generation's checkpoint counts every genome asked for: pymoo's and the
        sensitivity probes (which are archived like any); without that checkpoint (a
        crash before it) only the archive's counts are known.
        """
        rows = [point for g, point in archived.values() if g <= generation]
        counts = {"genomes evaluated": len(rows)}
        asked = self._asked(generation)
        if asked is not None:
            counts = {"genomes asked for": asked} | counts
            counts["served from the archive (repeats)"] = asked - len(rows)
        counts["failed (worst objectives)"] = sum(FAILED in point for point in rows)
        return counts

    def _asked(self, generation: int) -> int | None:
        try:
            checkpoint = load_latest(
                self.run_dir / CHECKPOINT_DIR,
                self.record.run_id,
                self.record.config_digests,
            )
        except UserError:  # damaged or foreign checkpoints: resume says so, not reports
            return None
        if checkpoint is None or checkpoint.generation != generation:
            return None
        return checkpoint.n_eval + checkpoint.probes


def _is_png(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE
    except OSError:
        return False
