"""Final nuScenes reports of a ``bevfusion_mmdet3d`` run, beside the thesis's figures.

``python -m problems.bevfusion.mmdet3d_report RUN_DIR [--pick RULE]... [--uniform W]``
scores FP32, the uniform genomes asked for and the front points picked (the rules of
``evoquant export``) with the config's evaluator, mmdet3d's ``NuScenesMetric`` (mAP,
NDS and the TP errors of the nuScenes devkit), on the run's validation samples (or,
``--samples rest``, every sample that is neither calibration nor fitness), and
writes ``REPORT.md`` and ``report.json`` to ``RUN_DIR/nuscenes_report/``.

The devkit scores a whole split (it refuses predictions for a subset), so while the
report runs its ground truth is restricted to the validation samples; with every
sample of nuScenes val the figures are the standard ones.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from mmengine.structures import BaseDataElement

from evoquant.atomic import write_json_atomic, write_text_atomic
from evoquant.errors import UserError
from evoquant.export.pick import load_front, pick
from evoquant.export.plan import genome_configs
from evoquant.pipeline import prepare
from evoquant.quant.layers import Layer
from evoquant.quant.model import Gene, QuantizedModel
from evoquant.rundir import make_directory, read_run_config
from evoquant.space import SearchSpace, layer_weight_shapes
from fitness.bits import bit_metrics
from problems.bevfusion.mmdet3d_adapter import (
    NAME,
    ROLES,
    PendingBatch,
    SampleSource,
    bevfusion_mmdet3d_problem,
    load_batch,
    problem_samples,
    require_mmdet3d,
    split_samples,
)

REPORT_DIR = "nuscenes_report"
SUMMARY = ("NDS", "mAP", "mATE", "mASE", "mAOE", "mAVE", "mAAE")
"""NuScenesMetric's headline figures, the columns of the thesis's tables."""


@dataclass(frozen=True)
class ThesisResult:
    """One configuration as the reference thesis reports it on nuScenes val."""

    label: str
    table: str
    relative_cost: float
    figures: tuple[float, ...]
    """NDS, mAP, mATE, mASE, mAOE, mAVE, mAAE."""


THESIS = (
    ThesisResult(
        "FP32", "4.1 (NQ)", 1.0, (0.5605, 0.6130, 0.297, 0.710, 1.553, 0.267, 0.186)
    ),
    ThesisResult(
        "uniform W16A16",
        "3.3 (16Q)",
        0.5,
        (0.5602, 0.6124, 0.297, 0.710, 1.554, 0.267, 0.186),
    ),
    ThesisResult(
        "uniform W8A8",
        "3.1 (8Q)",
        0.25,
        (0.5612, 0.6140, 0.2966, 0.7100, 1.5547, 0.2648, 0.1865),
    ),
    ThesisResult(
        "uniform W4A8 + alpha",
        "4.1 (4AQ)",
        0.125,
        (0.5547, 0.6043, 0.304, 0.710, 1.561, 0.279, 0.182),
    ),
    ThesisResult(
        "uniform W2A8 + alpha",
        "3.3 (2AQ)",
        0.0625,
        (0.0903, 0.0340, 0.707, 0.863, 1.170, 0.948, 0.750),
    ),
    ThesisResult(
        "mixed precision, F_box objective (MPQ-DE_CAE)",
        "4.1",
        0.1033,
        (0.5422, 0.5874, 0.305, 0.712, 1.556, 0.310, 0.189),
    ),
    ThesisResult(
        "mixed precision, cosine objective (MPQ-CAE)",
        "4.1",
        0.1177,
        (0.5162, 0.5679, 0.316, 0.713, 1.553, 0.439, 0.209),
    ),
)
"""Tables 3.1, 3.3 and 4.1 of the reference thesis (relative cost: its 108 layers)."""


def summarize(metrics: Mapping[str, float]) -> dict[str, float]:
    """NuScenesMetric's keys (``.../pred_instances_3d_NuScenes/NDS``) -> ``NDS``."""
    summary = {}
    for name in SUMMARY:
        keys = [key for key in metrics if key.rsplit("/", 1)[-1] == name]
        if keys:
            summary[name] = float(metrics[min(keys, key=len)])
    return summary


def score_genomes(
    quantized: QuantizedModel,
    layers: Sequence[Layer],
    genomes: Mapping[str, Sequence[Gene] | None],
    batches: Iterable[dict | PendingBatch],
    metric: Any,
) -> list[dict[str, Any]]:
    """Each genome's metrics from ``metric`` (NuScenesMetric's ``process`` /
    ``compute_metrics``) over ``batches``, fed as mmengine's ``Evaluator`` feeds it."""
    rows = []
    batches = list(batches)
    for label, genome in genomes.items():
        configs = quantized.apply(genome)
        for batch in batches:
            data = load_batch(batch)
            with torch.no_grad():
                samples = quantized.model.test_step(data)
            metric.process(
                data,
                [s.to_dict() if isinstance(s, BaseDataElement) else s for s in samples],
            )
        results = list(metric.results)
        metric.results.clear()
        metrics = metric.compute_metrics(results)
        cost = bit_metrics(layers, [None if c is None else c[0] for c in configs])
        rows.append(
            {
                "label": label,
                "relative_cost": cost["relative_cost"],
                **summarize(metrics),
                "metrics": {k: float(v) for k, v in metrics.items()},
            }
        )
    return rows


@contextmanager
def restricted_ground_truth(
    devkit: ModuleType | Any, tokens: Iterable[str]
) -> Iterator[None]:
    """While active, the devkit's ``load_gt`` keeps only the samples ``tokens`` names.

    ``devkit`` is ``nuscenes.eval.detection.evaluate``, where ``NuScenesEval`` looks
    ``load_gt`` up; its result (``EvalBoxes``) is rebuilt with those samples only.
    """
    load_gt = devkit.load_gt
    keep = set(tokens)

    def restricted(*args: Any, **kwargs: Any) -> Any:
        boxes = load_gt(*args, **kwargs)
        kept = type(boxes)()
        for token in boxes.sample_tokens:
            if token in keep:
                kept.add_boxes(token, boxes[token])
        return kept

    devkit.load_gt = restricted
    try:
        yield
    finally:
        devkit.load_gt = load_gt


def _fmt(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else "-"


def report_markdown(rows: Sequence[Mapping[str, Any]], samples: int) -> str:
    """The evaluated genomes, then the thesis's figures for the same configurations."""
    header = "| configuration | relative cost | " + " | ".join(SUMMARY) + " |"
    rule = "|---" * (len(SUMMARY) + 2) + "|"
    ours = [
        f"| {row['label']} | {_fmt(row['relative_cost'])} | "
        + " | ".join(_fmt(row.get(name)) for name in SUMMARY)
        + " |"
        for row in rows
    ]
    thesis = [
        f"| {t.label} (Table {t.table}) | {t.relative_cost:.4f} | "
        + " | ".join(f"{v:.4f}" for v in t.figures)
        + " |"
        for t in THESIS
    ]
    return "\n".join(
        [
            "# nuScenes report",
            "",
            (
                f"mmdet3d's NuScenesMetric on {samples} samples held out of "
                "calibration and fitness (relative cost: bits of the quantized layers "
                "/ their FP32 bits)."
            ),
            "",
            header,
            rule,
            *ours,
            "",
            (
                "The reference thesis on nuScenes val (its checkpoint, calibration "
                "and samples; Tables 3.1, 3.3 and 4.1):"
            ),
            "",
            header,
            rule,
            *thesis,
            "",
        ]
    )


def _genomes(
    space: SearchSpace,
    front: Sequence[Mapping[str, Any]],
    objectives: Sequence[str],
    picks: Sequence[str],
    uniform: Sequence[int],
    fp32: bool,
) -> dict[str, Sequence[Gene] | None]:
    genomes: dict[str, Sequence[Gene] | None] = {"FP32": None} if fp32 else {}
    for width in uniform:
        if width not in space.uniform_levels():
            raise UserError(
                f"--uniform {width}: the run's uniform widths are "
                f"{list(space.uniform_levels())}"
            )
        label = f"uniform W{width}A{space.activation_bits(width)}"
        genomes[label] = space.bit_configs(space.to_bits(space.uniform(width)))
    for rule in picks:
        index = pick(front, rule, objectives)
        genomes[f"front {rule} (point {index})"] = genome_configs(
            front[index], [layer.name for layer in space.layers], lambda: space
        )
    return genomes


def report_samples(
    args: Mapping[str, Any], samples: str = "validation"
) -> tuple[SampleSource, list[PendingBatch]]:
    """The run's dataset and the batches to report on: its validation samples, or
    ``samples`` ('rest' or a slice) chosen apart from calibration and fitness."""
    bound = inspect.signature(bevfusion_mmdet3d_problem).bind(**args)
    bound.apply_defaults()
    arg = bound.arguments
    source, roles = problem_samples(
        arg["config"],
        {role: arg[role] for role in ROLES},
        arg["cfg_options"],
        arg["mmdet3d_root"],
        arg["dataloader"],
    )
    if samples != "validation":
        roles = split_samples(
            {
                "calibration": list(roles["calibration"]),
                "fitness": list(roles["fitness"]),
                "validation": samples,
            },
            len(source.dataset),
        )
    if not roles["validation"]:
        raise UserError("no sample to report on: the run's validation set is empty")
    return source, source.pending(roles["validation"], arg["batch_size"])


def nuscenes_metric(source: SampleSource) -> Any:
    """The config's evaluator for ``source`` (its test or val evaluator)."""
    from mmengine.registry import METRICS

    key = source.dataloader.replace("dataloader", "evaluator")
    cfg = source.cfg.get(key)
    if isinstance(cfg, (list, tuple)):
        if len(cfg) != 1:
            raise UserError(f"the mmdet3d config's {key} must be one metric")
        cfg = cfg[0]
    if cfg is None or "NuScenesMetric" not in str(cfg.get("type")):
        raise UserError(f"the mmdet3d config's {key} is not a NuScenesMetric")
    metric = METRICS.build(cfg)
    metric.dataset_meta = source.dataset.metainfo
    return metric


def report_run(
    run_dir: str | Path,
    picks: Sequence[str] = ("knee",),
    uniform: Sequence[int] = (),
    fp32: bool = True,
    samples: str = "validation",
    out: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Score the chosen genomes of ``run_dir``; writes REPORT.md and report.json."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if config.problem.name != NAME:
        raise UserError(
            f"{run_dir} searched problem {config.problem.name!r}: the nuScenes "
            f"report is for {NAME} runs"
        )
    require_mmdet3d()
    front = load_front(run_dir) if picks else []
    source, batches = report_samples(config.problem.args, samples)
    prepared = prepare(config, run_dir, rebuild_stale=False)
    layers = prepared.layers
    space = SearchSpace.from_config(
        layers, config, weight_shapes=layer_weight_shapes(prepared.model, layers)
    )
    genomes = _genomes(space, front, config.search.objectives, picks, uniform, fp32)
    directory = make_directory(
        Path(out) if out is not None else run_dir / REPORT_DIR, "report folder"
    )
    metric = nuscenes_metric(source)
    indices = [i for batch in batches for i in batch.indices]
    tokens = [source.dataset.get_data_info(i)["token"] for i in indices]
    import nuscenes.eval.detection.evaluate as devkit

    quantized = QuantizedModel(prepared.model, prepared.table)
    try:
        with restricted_ground_truth(devkit, tokens):
            rows = score_genomes(quantized, layers, genomes, batches, metric)
    finally:
        quantized.remove()
    write_text_atomic(directory / "REPORT.md", report_markdown(rows, len(indices)))
    write_json_atomic(
        directory / "report.json",
        {
            "run_dir": str(run_dir),
            "samples": indices,
            "genomes": rows,
            "thesis": [
                {
                    "label": t.label,
                    "table": t.table,
                    "relative_cost": t.relative_cost,
                    **dict(zip(SUMMARY, t.figures)),
                }
                for t in THESIS
            ],
        },
    )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m problems.bevfusion.mmdet3d_report",
        description="nuScenes metrics of chosen genomes of a bevfusion_mmdet3d run",
    )
    parser.add_argument("run_dir")
    parser.add_argument(
        "--pick",
        action="append",
        help="a front point, as evoquant export picks it (repeatable; default knee)",
    )
    parser.add_argument(
        "--uniform",
        action="append",
        type=int,
        default=[],
        metavar="W",
        help="also the uniform genome of weight width W (repeatable)",
    )
    parser.add_argument("--no-fp32", action="store_true", help="skip the FP32 model")
    parser.add_argument(
        "--samples",
        default="validation",
        help="validation (the run's), rest (every sample neither calibration nor "
        "fitness, for figures comparable to the thesis) or START:STOP:STEP",
    )
    parser.add_argument("--out", help="report folder (default RUN_DIR/nuscenes_report)")
    args = parser.parse_args(argv)
    try:
        rows = report_run(
            args.run_dir,
            args.pick or ["knee"],
            args.uniform,
            not args.no_fp32,
            args.samples,
            args.out,
        )
    except UserError as error:
        print(f"mmdet3d_report: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps([{k: v for k, v in r.items() if k != "metrics"} for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
