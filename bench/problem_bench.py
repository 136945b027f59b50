"""What the per-problem benches (``heldout``, ``int4_blockwise``) share: their command
line and how they write their results."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

import torch


def problem_bench_args(
    description: str, problems: Iterable[str], out: Path
) -> argparse.Namespace:
    """``--threads`` (torch's intra-op threads, set here), ``--problems`` (default:
    every one of ``problems``) and ``--out`` (default ``out``), parsed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--problems", nargs="+", default=list(problems))
    parser.add_argument("--out", type=Path, default=out)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def write_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {path}")
