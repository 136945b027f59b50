"""The nuScenes report: thesis figures, NuScenesMetric's keys, the devkit restriction.

``score_genomes`` itself runs in test_mmdet3d_adapter.py on the mini testbed. The
devkit stand-ins follow nuscenes-devkit's ``nuscenes/eval/detection/evaluate.py``
(``NuScenesEval`` calls the module-level ``load_gt`` and refuses predictions whose
sample tokens differ from the split's) and ``EvalBoxes`` (``add_boxes``,
``sample_tokens``, indexing by token); the metric keys follow mmdet3d ``fe25f7a``
``mmdet3d/evaluation/metrics/nuscenes_metric.py`` (``pred_instances_3d_NuScenes/NDS``,
``.../mAP``, ``.../mATE`` ... under the ``NuScenes metric`` prefix).
"""

from types import SimpleNamespace

import pytest

from evoquant.config import parse_config
from evoquant.errors import UserError
from evoquant.rundir import RunDir
from problems.bevfusion.mmdet3d_report import (
    SUMMARY,
    THESIS,
    main,
    report_markdown,
    report_run,
    restricted_ground_truth,
    summarize,
)


def thesis(label: str):
    return next(t for t in THESIS if t.label == label)


def test_thesis_figures_are_the_tables_values():
    assert thesis("FP32").figures[:2] == (0.5605, 0.6130)
    assert thesis("uniform W8A8").figures[:2] == (0.5612, 0.6140)
    assert thesis("uniform W4A8 + alpha").figures[:2] == (0.5547, 0.6043)
    assert thesis("uniform W2A8 + alpha").figures[:2] == (0.0903, 0.0340)
    best = thesis("mixed precision, F_box objective (MPQ-DE_CAE)")
    assert (best.figures[:2], best.relative_cost) == ((0.5422, 0.5874), 0.1033)
    cosine = thesis("mixed precision, cosine objective (MPQ-CAE)")
    assert (cosine.figures[:2], cosine.relative_cost) == ((0.5162, 0.5679), 0.1177)
    for t in THESIS:
        assert len(t.figures) == len(SUMMARY)
        if t.label.startswith("uniform W"):
            width = int(t.label.split("W")[1].split("A")[0])
            assert t.relative_cost == width / 32


def test_summary_reads_nuscenes_metric_keys():
    metrics = {
        "NuScenes metric/pred_instances_3d_NuScenes/NDS": 0.5,
        "NuScenes metric/pred_instances_3d_NuScenes/mAP": 0.4,
        "pred_instances_3d_NuScenes/mATE": 0.3,
        "pred_instances_3d_NuScenes/car_AP_dist_0.5": 0.9,
        "pred_instances_3d_NuScenes/car_trans_err": 0.2,
    }
    assert summarize(metrics) == {"NDS": 0.5, "mAP": 0.4, "mATE": 0.3}


class EvalBoxes:
    """nuscenes-devkit's EvalBoxes, as far as the restriction uses it."""

    def __init__(self):
        self.boxes = {}

    def add_boxes(self, sample_token, boxes):
        self.boxes[sample_token] = boxes

    @property
    def sample_tokens(self):
        return list(self.boxes)

    def __getitem__(self, token):
        return self.boxes[token]


def devkit():
    def load_gt(nusc, eval_split, box_cls, verbose=False):
        boxes = EvalBoxes()
        for token in ("a", "b", "c"):
            boxes.add_boxes(token, [f"{token}-{eval_split}"])
        return boxes

    return SimpleNamespace(load_gt=load_gt)


def test_devkit_ground_truth_is_restricted_while_the_report_runs():
    module = devkit()
    original = module.load_gt
    with restricted_ground_truth(module, ["c", "a"]):
        kept = module.load_gt(None, "val", object, verbose=False)
        assert kept.sample_tokens == ["a", "c"] and kept["c"] == ["c-val"]
    assert module.load_gt is original
    with pytest.raises(RuntimeError), restricted_ground_truth(module, ["a"]):
        raise RuntimeError("the devkit failed")
    assert module.load_gt is original
    assert original(None, "val", object).sample_tokens == ["a", "b", "c"]


def test_markdown_puts_our_rows_beside_the_thesis():
    rows = [
        {"label": "FP32", "relative_cost": 1.0, "NDS": 0.7, "mAP": 0.68},
        {"label": "front knee (point 3)", "relative_cost": 0.11, "NDS": 0.69},
    ]
    text = report_markdown(rows, 5978)
    assert "on 5978 samples held out of calibration and fitness" in text
    assert "| FP32 | 1.0000 | 0.7000 | 0.6800 | - |" in text
    assert "| front knee (point 3) | 0.1100 | 0.6900 | - |" in text
    assert "| FP32 (Table 4.1 (NQ)) | 1.0000 | 0.5605 | 0.6130 |" in text
    assert "(MPQ-DE_CAE) (Table 4.1) | 0.1033 | 0.5422 | 0.5874 |" in text


def test_report_is_for_bevfusion_mmdet3d_runs_only(tmp_path):
    RunDir(tmp_path).create(
        parse_config({"problem": {"name": "digits"}}), ["fc"], [[8]]
    )
    with pytest.raises(UserError, match="searched problem 'digits': the nuScenes"):
        report_run(tmp_path)


def test_command_errors_are_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmdet3d_report: error: ") and err.count("\n") == 1
