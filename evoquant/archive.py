"""Every evaluated genome and its metrics, in SQLite; the search's evaluation cache.

A row is committed as soon as its result arrives, so a killed run loses no finished
evaluation and a resumed run never pays for one twice. WAL mode lets reports read the
archive while a search writes it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import Any

from evoquant.errors import UserError

ARCHIVE_FILE = "archive.sqlite"
FAILED = "failed"
QUERY_CHUNK = 500

Genome = tuple[int, ...]
Metrics = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    genome TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,
    metrics TEXT NOT NULL,
    generation INTEGER NOT NULL,
    created REAL NOT NULL
)
"""

_POPULATIONS = """
CREATE TABLE IF NOT EXISTS populations (
    generation INTEGER PRIMARY KEY,
    genomes TEXT NOT NULL
)
"""


def genome_key(bits: Iterable[int]) -> str:
    """The canonical text of a bit list: ``"8,4,16"``."""
    return ",".join(str(int(b)) for b in bits)


def _column(objective: str) -> str:
    """The quoted column holding an objective's value, prefixed to avoid clashes."""
    return '"obj_' + objective.replace('"', '""') + '"'


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, Real) else None


class Archive:
    """One row per evaluated genome: metrics (JSON), objective columns, status, generation."""

    def __init__(self, path: str | Path, objectives: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.objectives = tuple(objectives)
        try:
            self._db = sqlite3.connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.execute(_POPULATIONS)
            present = {
                row[1] for row in self._db.execute("PRAGMA table_info(evaluations)")
            }
            for name in self.objectives:
                if f"obj_{name}" not in present:
                    self._db.execute(
                        f"ALTER TABLE evaluations ADD COLUMN {_column(name)} REAL"
                    )
            self._db.commit()
        except sqlite3.DatabaseError as error:
            raise UserError(
                f"archive {self.path} is not a usable SQLite database: {error}"
            ) from None

    def get_many(self, genomes: Iterable[Sequence[int]]) -> dict[Genome, Metrics]:
        """The archived metrics of those genomes that have any; a failure carries ``"failed"``."""
        keys = list(dict.fromkeys(genome_key(g) for g in genomes))
        found: dict[Genome, Metrics] = {}
        for start in range(0, len(keys), QUERY_CHUNK):
            chunk = keys[start : start + QUERY_CHUNK]
            rows = self._db.execute(
                "SELECT genome, status, error, metrics FROM evaluations"
                f" WHERE genome IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for key, status, error, metrics in rows:
                found[tuple(int(b) for b in key.split(","))] = _metrics(
                    status, error, metrics
                )
        return found

    def put(
        self, genome: Sequence[int], metrics: Mapping[str, Any], generation: int
    ) -> None:
        """Record one result (committed now); a genome already archived keeps its first row."""
        failed = metrics.get(FAILED)
        values = {k: v for k, v in metrics.items() if k != FAILED}
        columns = ["genome", "status", "error", "metrics", "generation", "created"]
        row = [
            genome_key(genome),
            "ok" if failed is None else "failed",
            None if failed is None else str(failed),
            json.dumps(values, sort_keys=True, default=float),
            generation,
            time.time(),
        ]
        for name in self.objectives:
            columns.append(_column(name))
            row.append(None if failed is not None else _number(values.get(name)))
        self._db.execute(
            f"INSERT OR IGNORE INTO evaluations ({', '.join(columns)})"
            f" VALUES ({', '.join('?' * len(row))})",
            row,
        )
        self._db.commit()

    def put_population(self, generation: int, genomes: Iterable[Sequence[int]]) -> None:
        """Remember which genomes made up a generation, so every plot can be redrawn later."""
        self._db.execute(
            "INSERT OR REPLACE INTO populations (generation, genomes) VALUES (?, ?)",
            (generation, json.dumps([genome_key(g) for g in genomes])),
        )
        self._db.commit()

    def populations(self) -> dict[int, list[list[int]]]:
        rows = self._db.execute(
            "SELECT generation, genomes FROM populations ORDER BY generation"
        )
        return {
            generation: [[int(b) for b in key.split(",")] for key in json.loads(text)]
            for generation, text in rows
        }

    def records(self) -> list[dict[str, Any]]:
        """Every row in evaluation order, for reports."""
        rows = self._db.execute(
            "SELECT genome, status, error, metrics, generation, created FROM evaluations ORDER BY rowid"
        )
        return [
            {
                "genome": [int(b) for b in key.split(",")],
                "status": status,
                "error": error,
                "metrics": _metrics(status, error, metrics),
                "generation": generation,
                "created": created,
            }
            for key, status, error, metrics, generation, created in rows
        ]

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    def close(self) -> None:
        self._db.close()


def _metrics(status: str, error: str | None, text: str) -> Metrics:
    """A row back to what the evaluator yielded."""
    metrics = json.loads(text)
    if status == "failed":
        metrics[FAILED] = error
    return metrics
