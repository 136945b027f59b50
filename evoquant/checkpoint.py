"""Per-generation checkpoints: the state a search needs to continue exactly, as checksummed JSON.

Written atomically so a crash leaves either the old or the new file, never half of one;
the checksum catches what the filesystem does not. The last few are kept so a damaged
latest one costs one generation. Each names its run (id and config digest): a valid
checkpoint of another run is refused, never continued from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evoquant import __version__
from evoquant.atomic import write_json_atomic
from evoquant.errors import UserError

KEEP = 3
_NAME = re.compile(r"gen_(\d+)\.json")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    """A population after survival and everything that decides the next one.

    ``rank`` and ``crowding`` are what tournament selection reads; ``rng_state`` is the
    algorithm's numpy bit-generator state (``Generator.bit_generator.state``).
    ``n_eval`` counts the genomes pymoo asked for, ``probes`` the sensitivity probes
    the search asked for besides (once a run: a resume reads them back unasked).
    """

    generation: int
    genomes: list[list[int]]
    objectives: list[list[float]]
    rank: list[int]
    crowding: list[float]
    rng_state: dict[str, Any]
    n_eval: int
    config_digest: str
    run_id: str
    probes: int = 0
    version: str = __version__


def _checksum(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _floats_out(values: list[float]) -> list[float | str]:
    """Strict JSON has no infinity (crowding of boundary points is inf): write it as text."""
    return [v if math.isfinite(v) else str(v) for v in values]


def checkpoint_paths(directory: Path) -> list[Path]:
    """The checkpoint files in ``directory``, oldest generation first."""
    if not directory.is_dir():
        return []
    numbered = []
    for path in directory.iterdir():
        match = _NAME.fullmatch(path.name)
        if match:
            numbered.append((int(match[1]), path))
    return [path for _, path in sorted(numbered)]


def write_checkpoint(directory: Path, checkpoint: Checkpoint, keep: int = KEEP) -> Path:
    """Save ``gen_NNNN.json`` atomically, then drop all but the newest ``keep``."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = asdict(checkpoint)
    payload["objectives"] = [_floats_out(row) for row in checkpoint.objectives]
    payload["crowding"] = _floats_out(checkpoint.crowding)
    path = directory / f"gen_{checkpoint.generation:04d}.json"
    write_json_atomic(path, {**payload, "sha256": _checksum(payload)})
    for old in checkpoint_paths(directory)[:-keep]:
        old.unlink()
    return path


def read_checkpoint(path: Path) -> Checkpoint:
    """One checkpoint, verified; unreadable, truncated or altered files are a UserError."""
    try:
        data = json.loads(path.read_text())
        stored = data.pop("sha256")
        if stored != _checksum(data):
            raise ValueError("checksum mismatch")
        data["objectives"] = [[float(v) for v in row] for row in data["objectives"]]
        data["crowding"] = [float(v) for v in data["crowding"]]
        return Checkpoint(**data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"checkpoint {path} is corrupt: {error}") from None


def load_latest(
    directory: Path, run_id: str, config_digests: Collection[str]
) -> Checkpoint | None:
    """The newest valid checkpoint of run ``run_id``; a corrupt one is logged and skipped.

    None when there is no checkpoint at all (the run stopped inside generation 0);
    a UserError when there are some but none is valid, or when the newest valid one
    belongs to another run or config (a file copied in: continuing from it would be
    silently wrong, and skipping it would let it stay "latest" forever).
    """
    paths = checkpoint_paths(directory)
    for path in reversed(paths):
        try:
            checkpoint = read_checkpoint(path)
        except UserError as error:
            log.warning("%s; falling back to the previous checkpoint", error)
            continue
        if (
            checkpoint.run_id != run_id
            or checkpoint.config_digest not in config_digests
        ):
            raise UserError(
                f"checkpoint {path} belongs to another run or config (run "
                f"{checkpoint.run_id}, config {checkpoint.config_digest}): move it away"
            )
        return checkpoint
    if paths:
        raise UserError(f"no valid checkpoint in {directory} ({len(paths)} corrupt)")
    return None
