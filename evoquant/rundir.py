"""The run directory: the name of every file in it, which files are state, which are reports.

State is what a search cannot redo without cost or without changing its results: the
run file (config, run id), the quantization table, the archive and the checkpoints.
Each carries the run's id or a digest of what its contents depend on, so a file left
by another run is refused with a reason instead of being used. Reports (plots, front,
summary, hypervolume) are redrawn from state whenever they are missing or stale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evoquant import __version__
from evoquant.archive import Archive
from evoquant.atomic import write_json_atomic
from evoquant.checkpoint import Checkpoint, load_latest
from evoquant.config import LAYERS_DIGEST_DEFAULTS, RunConfig, parse_config
from evoquant.errors import UserError

RUN_FILE = "run.json"
ARCHIVE_FILE = "archive.sqlite"
TABLE_TENSORS_FILE = "quant_table.safetensors"
TABLE_META_FILE = "quant_table.json"
CHECKPOINT_DIR = "checkpoints"
LOG_FILE = "run.log"
RAY_DIR = "ray"
UNIFORM_FILE = "uniform.json"
EXPORT_DIR = "export"
VALIDATION_FILE = "validation.json"

PLOTS_DIR = "plots"
GENERATION_PLOT = "gen_{:04d}.png"
HYPERVOLUME_PLOT = "hypervolume.png"
FRONT_CSV = "front.csv"
FRONT_JSON = "front.json"
SUMMARY_FILE = "summary.md"
HYPERVOLUME_FILE = "hypervolume.json"

STATE = (
    RUN_FILE,
    TABLE_TENSORS_FILE,
    TABLE_META_FILE,
    ARCHIVE_FILE,
    CHECKPOINT_DIR,
    VALIDATION_FILE,
)
"""Files a search reads back; damaged or foreign ones are refused, never rewritten."""
REPORTS = (PLOTS_DIR, FRONT_CSV, FRONT_JSON, SUMMARY_FILE, HYPERVOLUME_FILE)
"""Files a search only writes; they are redrawn from the state whenever needed."""

STARTUP_FILES = (LOG_FILE, TABLE_META_FILE, TABLE_TENSORS_FILE)
"""What a search writes before its run file: their presence says one was started here."""

DEFAULT_ROOT = Path("runs")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

SCORING_SECTIONS = ("problem", "quant", "error", "target")
"""Config sections an archived score depends on (with the layer patterns and threads)."""


def run_dir_for(name: str, root: Path = DEFAULT_ROOT) -> Path:
    """``runs/NAME``; a name that is a path, hidden, or absurdly long is refused."""
    if not NAME.fullmatch(name):
        raise UserError(
            f"run name {name!r} is not a plain folder name: use letters, digits, "
            "'.', '_' and '-', at most 100 characters, starting with a letter or "
            "digit (--run-dir takes a path)"
        )
    return root / name


def scoring_digest(config: RunConfig) -> str:
    """A hash of the settings that decide a genome's scores, and nothing else.

    A forced resume may change the search (pop size, operators, generations) but not
    these: scores archived under other settings would be mixed with new ones.
    """
    settings = config.model_dump(mode="json")
    scoring = {key: settings[key] for key in SCORING_SECTIONS}
    layers = settings["layers"]
    scoring["layers"] = {k: layers[k] for k in ("include", "exclude")} | {
        k: layers[k]
        for k, default in LAYERS_DIGEST_DEFAULTS.items()
        if layers[k] != default
    }
    scoring["threads_per_worker"] = settings["evaluator"]["threads_per_worker"]
    if settings["evaluator"]["compile"]:  # compiled kernels round differently
        scoring["compile"] = True
    text = json.dumps(scoring, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunRecord:
    """What ``run.json`` holds: the run's identity, config and genome layout.

    ``config_digests`` lists every config the run has run under (a forced resume adds
    one), so a checkpoint written under an earlier one is still recognised as its own.
    """

    run_id: str
    config: RunConfig
    config_digests: tuple[str, ...]
    scoring_digest: str
    layers: tuple[str, ...]
    uniform_genomes: tuple[tuple[int, ...], ...]
    uniform_labels: tuple[str, ...] = ()
    """How each uniform genome was made (``W4A8``); fixed layers keep their own width."""
    genes: tuple[str, ...] = ()
    """One label per gene: the layer names, or two per layer under ``two_genes``."""
    version: str = __version__

    def __post_init__(self) -> None:
        if not self.genes:
            object.__setattr__(self, "genes", self.layers)

    @property
    def config_digest(self) -> str:
        return self.config_digests[-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "config": self.config.model_dump(mode="json"),
            "config_digest": self.config_digest,
            "config_digests": list(self.config_digests),
            "scoring_digest": self.scoring_digest,
            "layers": list(self.layers),
            "uniform_genomes": [list(g) for g in self.uniform_genomes],
            "uniform_labels": list(self.uniform_labels),
            "genes": list(self.genes),
            "evoquant_version": self.version,
        }


RESUME_ADVICE = "resume with its own config or add --force"


class RunDir:
    """One run directory: where its files are, and whether they belong together."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def _refuse_file(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path} is a file, not a run directory")

    def leftovers(self) -> list[str]:
        """State files of some run, present without the run file that would own them."""
        archive = self / ARCHIVE_FILE
        names = [ARCHIVE_FILE] if archive.exists() and archive.stat().st_size else []
        checkpoints = self / CHECKPOINT_DIR
        if checkpoints.is_dir() and any(checkpoints.iterdir()):
            names.append(f"{CHECKPOINT_DIR}/")
        return names

    def check_new(self) -> None:
        """Refuse to start a search where a run, or the remains of one, already are.

        A quantization table or log left by ``evoquant quantize`` is welcome: the table
        is checked against the model and settings before it is reused.
        """
        self._refuse_file()
        if (self / RUN_FILE).exists():
            raise UserError(
                f"{self.path} already holds a run: resume it or choose another name"
            )
        leftovers = self.leftovers()
        if leftovers:
            raise UserError(
                f"{self.path} holds {' and '.join(leftovers)} of a run whose {RUN_FILE} "
                "is gone: delete them or choose another name"
            )

    def read(self) -> RunRecord:
        """The run file, validated; every way it can be absent or wrong is one UserError."""
        self._refuse_file()
        path = self / RUN_FILE
        if not path.is_file():
            raise UserError(self._why_no_run())
        try:
            data = json.loads(path.read_bytes())
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
        except (OSError, ValueError, TypeError) as error:
            raise UserError(f"{path} is corrupt: {error}") from None
        if "run_id" not in data:
            version = data.get("evoquant_version", "unknown")
            raise UserError(
                f"{self.path} was written by evoquant {version}, whose run files are "
                f"not bound to their run: read it with that version or start a new search"
            )
        config = parse_config(data.get("config"), str(path), stored=True)
        try:
            uniform = tuple(tuple(int(b) for b in g) for g in data["uniform_genomes"])
            labels = tuple(str(x) for x in data.get("uniform_labels", ()))
            if labels and len(labels) != len(uniform):
                raise ValueError("uniform_labels")
            return RunRecord(
                run_id=str(data["run_id"]),
                config=config,
                config_digests=tuple(str(d) for d in data["config_digests"]),
                scoring_digest=str(data["scoring_digest"]),
                layers=tuple(str(name) for name in data["layers"]),
                uniform_genomes=uniform,
                uniform_labels=labels or default_labels(uniform),
                genes=tuple(str(name) for name in data.get("genes", ())),
                version=str(data.get("evoquant_version", "unknown")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"{path} is corrupt: missing or bad {error}") from None

    def _why_no_run(self) -> str:
        if not self.path.exists():
            return f"{self.path} does not exist"
        leftovers = self.leftovers()
        if leftovers:
            return (
                f"{self.path} has no {RUN_FILE} but holds {' and '.join(leftovers)} "
                "of some run: it cannot be resumed"
            )
        if any((self / name).exists() for name in STARTUP_FILES):
            return (
                f"{self.path} holds no run ({RUN_FILE} is missing: the search stopped "
                "before its first generation started): run 'evoquant search' again"
            )
        return f"{self.path} is not an evoquant run directory (no {RUN_FILE})"

    def create(
        self,
        config: RunConfig,
        layers: list[str],
        uniform_genomes: list[list[int]],
        uniform_labels: list[str] | None = None,
        genes: list[str] | None = None,
    ) -> RunRecord:
        """Write the run file of a new run, with a fresh run id."""
        self.check_new()
        self.path.mkdir(parents=True, exist_ok=True)
        record = RunRecord(
            run_id=uuid.uuid4().hex,
            config=config,
            config_digests=(config.digest(),),
            scoring_digest=scoring_digest(config),
            layers=tuple(layers),
            uniform_genomes=tuple(tuple(g) for g in uniform_genomes),
            uniform_labels=tuple(uniform_labels or default_labels(uniform_genomes)),
            genes=tuple(genes or layers),
        )
        write_json_atomic(self / RUN_FILE, record.to_json())
        return record

    def check_resume(
        self, config: RunConfig, force: bool, advice: str = RESUME_ADVICE
    ) -> RunRecord:
        """The run's record, if ``config`` may continue it; reads only, writes nothing.

        Another config needs ``force``, and even then must score genomes exactly as
        the archived ones were scored; without it the error ends with ``advice``, what
        the calling command offers instead.
        """
        record = self.read()
        if config.digest() == record.config_digest:
            return record
        if not force:
            raise UserError(
                f"{self.path} was run with another config (digest "
                f"{record.config_digest}, now {config.digest()}): {advice}"
            )
        if config.search.policy != record.config.search.policy:
            raise UserError(
                f"the new config changes search.policy, and with it the genome of "
                f"{self.path}'s archived results; start a new search"
            )
        if scoring_digest(config) != record.scoring_digest:
            changed = [
                key
                for key in (*SCORING_SECTIONS, "layers", "evaluator")
                if getattr(config, key) != getattr(record.config, key)
            ]
            raise UserError(
                f"the new config changes how genomes are scored ({', '.join(changed)}): "
                f"the archived scores of {self.path} would not apply; start a new search"
            )
        return record

    def resume_point(self, record: RunRecord) -> Checkpoint | None:
        """The checkpoint to continue from, and the archive it needs checked; reads only."""
        checkpoint = load_latest(
            self / CHECKPOINT_DIR, record.run_id, record.config_digests
        )
        if checkpoint is None:
            return None
        archive = self / ARCHIVE_FILE
        if not archive.is_file() or archive.stat().st_size == 0:
            raise UserError(
                f"{archive} is missing or empty while {CHECKPOINT_DIR}/ holds generation "
                f"{checkpoint.generation}: the run's evaluations are lost; start a new search"
            )
        owner = (record.run_id, record.scoring_digest)
        Archive(archive, owner=owner, read_only=True).close()
        return checkpoint

    def record_resume(self, record: RunRecord, config: RunConfig) -> RunRecord:
        """Store a forced resume's config, keeping the digests of the earlier ones."""
        if config.digest() == record.config_digest:
            return record
        updated = dataclasses.replace(
            record,
            config=config,
            config_digests=(*record.config_digests, config.digest()),
        )
        write_json_atomic(self / RUN_FILE, updated.to_json())
        return updated


def default_labels(uniform_genomes: Sequence[Sequence[int]]) -> tuple[str, ...]:
    """Labels for a run file that has none: ``W<b>`` where every gene is ``b``."""
    return tuple(
        f"W{g[0]}" if len(set(g)) == 1 else f"uniform {i}"
        for i, g in enumerate(uniform_genomes)
    )


def make_directory(path: Path, what: str) -> Path:
    """``path`` as a folder that exists, or one line saying why it cannot be."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {what} {path}: {error.strerror}") from None
    return path


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The config a run directory was started (or last force-resumed) with."""
    return RunDir(run_dir).read().config
