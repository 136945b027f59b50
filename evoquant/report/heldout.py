"""The held-out errors file (``validation.json``): its checksum, and reading it back.

``evoquant validate`` writes it; the reports read it. Both sides live here so that
the reports never import the command that scores the genomes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from evoquant.errors import UserError
from evoquant.rundir import VALIDATION_FILE, RunRecord


def digest(data: Any) -> str:
    """SHA-256 of ``data`` as canonical JSON: the file's checksum and its samples' hash."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def load_validation(run_dir: str | Path, record: RunRecord) -> dict[str, Any] | None:
    """The run's ``validation.json``, None when there is none; damaged or foreign is refused."""
    path = Path(run_dir) / VALIDATION_FILE
    if not path.exists():
        return None
    remedy = f"run 'evoquant validate {run_dir}' to score the held-out batches anew"
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or data.pop("sha256", None) != digest(data):
            raise ValueError("it fails its checksum")
        data["points"] = list(data["points"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path} is damaged ({error}): {remedy}") from None
    if (data.get("run_id"), data.get("scoring_digest")) != (
        record.run_id,
        record.scoring_digest,
    ):
        raise UserError(f"{path} belongs to another run: {remedy}")
    return data


def heldout_errors(validation: dict[str, Any]) -> dict[tuple[int, ...], float]:
    """Genome -> its held-out error, for the genomes whose validation succeeded."""
    return {
        tuple(point["bits"]): point["heldout"]["error"]
        for point in validation["points"]
        if "error" in point["heldout"]
    }
