"""A run's reports redrawn from its archive: per-generation plot, hypervolume, front, summary.

Reports are never read back: everything they show comes from the run file and the
archive, so a missing, stale or damaged report is simply drawn again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from evoquant.archive import FAILED, Archive
from evoquant.atomic import write_text_atomic
from evoquant.report.front import knee_point, pareto_front, write_front
from evoquant.report.hypervolume import points_hypervolume, reference_point
from evoquant.report.plots import plot_generation, plot_hypervolume
from evoquant.report.summary import write_summary
from evoquant.rundir import (
    GENERATION_PLOT,
    HYPERVOLUME_FILE,
    HYPERVOLUME_PLOT,
    PLOTS_DIR,
    RunRecord,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class RunReport:
    """Writes everything a person looks at after each generation, from archived metrics only."""

    def __init__(self, run_dir: str | Path, archive: Archive, record: RunRecord):
        self.run_dir = Path(run_dir)
        self.archive = archive
        self.gene_names = list(record.layers)
        self.uniform_genomes = [list(g) for g in record.uniform_genomes]
        self.objectives = tuple(record.config.search.objectives)
        self.info = {
            "problem": record.config.problem.name,
            "layers": len(record.layers),
            "config digest": record.config_digest,
        }
        self.hv_history: dict[int, float] = {}

    def points(self, genomes: Sequence[Sequence[int]]) -> list[dict]:
        """Archived metrics of the genomes that succeeded, each with its ``bits``."""
        found = self.archive.get_many(genomes)
        unique = dict.fromkeys(tuple(g) for g in genomes)
        return [
            {"bits": list(g)} | found[g]
            for g in unique
            if g in found and FAILED not in found[g]
        ]

    def front(self, genomes: Sequence[Sequence[int]]) -> list[dict]:
        return pareto_front(self.points(genomes), self.objectives)

    def plot(self, generation: int, genomes: Sequence[Sequence[int]]) -> Path:
        """The generation's population, front and uniform configurations."""
        plots = self.run_dir / PLOTS_DIR
        plots.mkdir(exist_ok=True)
        return plot_generation(
            plots / GENERATION_PLOT.format(generation),
            generation,
            self.points(genomes),
            self.front(genomes),
            self.points(self.uniform_genomes),
        )

    def latest(self, generation: int, genomes: Sequence[Sequence[int]]) -> None:
        """Hypervolume history, front files and summary as of ``generation``."""
        reference = reference_point(self.points(self.uniform_genomes))
        for g, population in self.archive.populations().items():
            if g < generation and g not in self.hv_history:
                self.hv_history[g] = points_hypervolume(
                    self.front(population), reference
                )
        front = self.front(genomes)
        self.hv_history[generation] = points_hypervolume(front, reference)
        history = {g: v for g, v in sorted(self.hv_history.items()) if g <= generation}
        write_text_atomic(
            self.run_dir / HYPERVOLUME_FILE, json.dumps(history, indent=1)
        )
        plot_hypervolume(self.run_dir / PLOTS_DIR / HYPERVOLUME_PLOT, history)
        write_front(self.run_dir, front, self.gene_names)
        info = self.info | {
            "generation": generation,
            "evaluations": len(self.archive),
            "hypervolume": f"{history[generation]:.6g}",
        }
        write_summary(
            self.run_dir,
            front,
            knee_point(front, self.objectives),
            self.points(self.uniform_genomes),
            self.gene_names,
            info,
        )

    def generation(self, generation: int, genomes: Sequence[Sequence[int]]) -> None:
        self.plot(generation, genomes)
        self.latest(generation, genomes)

    def catch_up(self) -> int:
        """Draw what a crash left undrawn: missing or damaged plots, then the latest reports.

        Returns the number of generations the archive knows.
        """
        populations = self.archive.populations()
        for generation, genomes in populations.items():
            path = self.run_dir / PLOTS_DIR / GENERATION_PLOT.format(generation)
            if not _is_png(path):
                self.plot(generation, genomes)
        if populations:
            last = max(populations)
            self.latest(last, populations[last])
        return len(populations)

    def redraw(self) -> int:
        """Every generation the archive knows, oldest first; returns how many."""
        populations = self.archive.populations()
        for generation, genomes in populations.items():
            self.plot(generation, genomes)
        if populations:
            last = max(populations)
            self.latest(last, populations[last])
        return len(populations)


def _is_png(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE
    except OSError:
        return False
