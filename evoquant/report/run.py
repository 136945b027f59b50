"""A run's reports redrawn from its archive: per-generation plot, hypervolume, front, summary."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from evoquant.archive import FAILED, Archive
from evoquant.errors import UserError
from evoquant.report.atomic import write_text_atomic
from evoquant.report.front import knee_point, pareto_front, write_front
from evoquant.report.hypervolume import points_hypervolume, reference_point
from evoquant.report.plots import plot_generation, plot_hypervolume
from evoquant.report.summary import write_summary

PLOTS_DIR = "plots"
HYPERVOLUME_FILE = "hypervolume.json"
REPORT_FILE = "report.json"


class RunReport:
    """Writes everything a person looks at after each generation, from archived metrics only."""

    def __init__(
        self,
        run_dir: str | Path,
        archive: Archive,
        gene_names: Sequence[str],
        uniform_genomes: Sequence[Sequence[int]],
        objectives: Sequence[str],
        info: Mapping[str, object],
    ):
        self.run_dir = Path(run_dir)
        self.archive = archive
        self.gene_names = list(gene_names)
        self.uniform_genomes = [list(g) for g in uniform_genomes]
        self.objectives = tuple(objectives)
        self.info = dict(info)
        write_text_atomic(
            self.run_dir / REPORT_FILE,
            json.dumps(
                {
                    "gene_names": self.gene_names,
                    "uniform_genomes": self.uniform_genomes,
                    "objectives": self.objectives,
                    "info": self.info,
                },
                indent=1,
            ),
        )
        self.hv_path = self.run_dir / HYPERVOLUME_FILE
        self.hv_history: dict[int, float] = (
            {int(k): v for k, v in json.loads(self.hv_path.read_text()).items()}
            if self.hv_path.exists()
            else {}
        )

    @classmethod
    def reopen(cls, run_dir: str | Path, archive: Archive) -> RunReport:
        """The report of an existing run, as its search set it up."""
        path = Path(run_dir) / REPORT_FILE
        if not path.is_file():
            raise UserError(
                f"{run_dir} has no {REPORT_FILE}: no generation was ever reported"
            )
        state = json.loads(path.read_text())
        return cls(
            run_dir,
            archive,
            state["gene_names"],
            state["uniform_genomes"],
            state["objectives"],
            state["info"],
        )

    def points(self, genomes: Sequence[Sequence[int]]) -> list[dict]:
        """Archived metrics of the genomes that succeeded, each with its ``bits``."""
        found = self.archive.get_many(genomes)
        unique = dict.fromkeys(tuple(g) for g in genomes)
        return [
            {"bits": list(g)} | found[g]
            for g in unique
            if g in found and FAILED not in found[g]
        ]

    def generation(self, generation: int, genomes: Sequence[Sequence[int]]) -> None:
        population = self.points(genomes)
        uniform = self.points(self.uniform_genomes)
        front = pareto_front(population, self.objectives)
        plots = self.run_dir / PLOTS_DIR
        plots.mkdir(exist_ok=True)
        plot_generation(
            plots / f"gen_{generation:04d}.png", generation, population, front, uniform
        )
        self.hv_history[generation] = points_hypervolume(
            front, reference_point(uniform)
        )
        write_text_atomic(self.hv_path, json.dumps(self.hv_history, indent=1))
        plot_hypervolume(plots / "hypervolume.png", self.hv_history)
        write_front(self.run_dir, front, self.gene_names)
        info = self.info | {
            "generation": generation,
            "evaluations": len(self.archive),
            "hypervolume": f"{self.hv_history[generation]:.6g}",
        }
        write_summary(
            self.run_dir,
            front,
            knee_point(front, self.objectives),
            uniform,
            self.gene_names,
            info,
        )

    def redraw(self) -> int:
        """Every generation the archive knows, oldest first; returns how many."""
        populations = self.archive.populations()
        for generation, genomes in populations.items():
            self.generation(generation, genomes)
        return len(populations)
