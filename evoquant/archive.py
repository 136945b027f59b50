"""Every evaluated genome and its metrics, in SQLite; the search's evaluation cache.

A row is committed as soon as its result arrives, so a killed run loses no finished
evaluation and a resumed run never pays for one twice. WAL mode lets reports read the
archive while a search writes it. An archive is bound to one run (its id and scoring
digest, in the ``run`` table): one left by another run is refused, never mixed in.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from numbers import Real
from pathlib import Path
from typing import Any

from evoquant.errors import UserError

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

_OWNER = """
CREATE TABLE IF NOT EXISTS run (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
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
    """One row per evaluated genome: metrics (JSON), objective columns, status, generation.

    ``owner`` (run id, scoring digest) binds a new archive to its run and refuses one
    bound to another; ``read_only`` opens it for reports without writing a byte.
    """

    def __init__(
        self,
        path: str | Path,
        objectives: Sequence[str] = (),
        *,
        owner: tuple[str, str] | None = None,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.objectives = tuple(objectives)
        if read_only and not self.path.is_file():
            raise UserError(f"archive {self.path} is missing")
        with self._sql():
            self._db = _connect(self.path, read_only)
            (verdict,) = self._db.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                detail = " ".join(verdict.split())
                raise UserError(f"archive {self.path} is damaged: {detail}")
            if not read_only:
                self._create_schema()
            if owner is not None:
                self._check_owner(*owner, bind=not read_only)

    @contextmanager
    def _sql(self) -> Iterator[None]:
        """SQLite's errors (damaged file, full disk, read-only) as one line for the user.

        SQLite checks its pages, not the rows' text: a damaged row shows up as text
        that is not UTF-8, JSON or a genome, and is reported the same way.
        """
        try:
            yield
        except sqlite3.OperationalError as error:  # the file may be fine, its disk not
            raise UserError(f"cannot use archive {self.path}: {error}") from None
        except sqlite3.DatabaseError as error:
            raise UserError(
                f"archive {self.path} is not a usable SQLite database: {error}"
            ) from None
        except ValueError as error:
            raise UserError(f"archive {self.path} is damaged: {error}") from None

    def _create_schema(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for table in (_SCHEMA, _POPULATIONS, _OWNER):
            self._db.execute(table)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(evaluations)")}
        for name in self.objectives:
            if f"obj_{name}" not in present:
                self._db.execute(
                    f"ALTER TABLE evaluations ADD COLUMN {_column(name)} REAL"
                )
        self._db.commit()

    def _check_owner(self, run_id: str, digest: str, bind: bool) -> None:
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}
        stored = (
            dict(self._db.execute("SELECT key, value FROM run"))
            if "run" in tables
            else {}
        )
        if not stored:
            if "evaluations" in tables and len(self):
                raise UserError(
                    f"archive {self.path} holds evaluations of an unknown run: "
                    "move it away or start the search in another directory"
                )
            if bind:
                self._db.executemany(
                    "INSERT INTO run (key, value) VALUES (?, ?)",
                    [("run_id", run_id), ("scoring_digest", digest)],
                )
                self._db.commit()
            return
        if stored.get("run_id") != run_id:
            raise UserError(
                f"archive {self.path} belongs to another run ({stored.get('run_id')}, "
                f"this run is {run_id}): move it away"
            )
        if stored.get("scoring_digest") != digest:
            raise UserError(
                f"archive {self.path} was scored under other quantization or problem "
                "settings than this run's"
            )

    def get_many(self, genomes: Iterable[Sequence[int]]) -> dict[Genome, Metrics]:
        """The archived metrics of those genomes that have any; a failure carries ``"failed"``."""
        with self._sql():
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
        with self._sql():
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
        with self._sql():
            self._db.execute(
                "INSERT OR REPLACE INTO populations (generation, genomes) VALUES (?, ?)",
                (generation, json.dumps([genome_key(g) for g in genomes])),
            )
            self._db.commit()

    def populations(self) -> dict[int, list[list[int]]]:
        with self._sql():
            rows = self._db.execute(
                "SELECT generation, genomes FROM populations ORDER BY generation"
            )
            return {
                generation: [
                    [int(b) for b in key.split(",")] for key in json.loads(text)
                ]
                for generation, text in rows
            }

    def records(self) -> list[dict[str, Any]]:
        """Every row in evaluation order, for reports."""
        with self._sql():
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
        with self._sql():
            return self._db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    def close(self) -> None:
        self._db.close()


def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
    if not read_only:
        return sqlite3.connect(path)
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        # WAL needs a shared-memory file beside the archive; in a directory nobody can
        # write, nobody is writing the archive either, so it can be read as it is
        return sqlite3.connect(f"{uri}?immutable=1", uri=True)


def _metrics(status: str, error: str | None, text: str) -> Metrics:
    """A row back to what the evaluator yielded."""
    metrics = json.loads(text)
    if status == "failed":
        metrics[FAILED] = error
    return metrics
