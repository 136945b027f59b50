"""The bevfusion_mmdet3d adapter's shared path, run on CPU with the mini testbed.

mmdet3d cannot be installed here (its BEVFusion project lives in a source checkout and
needs mmcv's CUDA operators), so the adapter's code runs through real mmengine
(``Config.fromfile``, registries under a ``default_scope``, ``load_checkpoint``,
``Runner.build_dataloader``) on the mini model, with stand-ins that follow what was
read upstream:

- mmdet3d ``fe25f7a`` ``mmdet3d/datasets/det3d_dataset.py`` (``metainfo``;
  ``get_data_info`` with ``token`` and, in test mode, ``eval_ann_info``) and
  ``datasets/transforms/formating.py`` (test-mode ground truth in
  ``data_sample.eval_ann_info``): ``NuScenesLikeScenes``;
- mmdet3d ``fe25f7a`` ``mmdet3d/evaluation/metrics/nuscenes_metric.py``
  (``process(data_batch, data_samples)`` reading ``pred_instances_3d`` and
  ``sample_idx``; ``compute_metrics(results)`` returning
  ``pred_instances_3d_NuScenes/<figure>``): ``NuScenesMetricStandIn``;
- mmengine ``2543429`` ``mmengine/runner/runner.py`` (``Runner.build_dataloader``),
  called for real.

The same file checks, without mmdet3d, how the calibration, fitness and validation
sample-index sets are split (disjoint) and that the shipped
``problems/configs/bevfusion_mmdet3d.yaml`` loads with the factory's defaults.

The test of the real model skips unless mmdet3d, a GPU and a BEVFusion config and
checkpoint are there.
"""

import importlib.util
import inspect
import logging
import os
from pathlib import Path

import pytest
import torch
from mmengine.structures import BaseDataElement
from safetensors.torch import load_file

from evoquant.api import sample_fingerprints
from evoquant.config import AlphaConfig, QuantConfig, load_config
from evoquant.errors import UserError
from evoquant.quant.layers import find_layers
from evoquant.quant.model import QuantizedModel
from evoquant.quant.table import build_quant_table
from fitness.bbox import detection_scores
from problems.bevfusion.detection import BoxErrors, DetectionMetric, flatten
from problems.bevfusion.layer_map import thesis_layers
from problems.bevfusion.mini.checkpoint import CONFIG, WEIGHTS
from problems.bevfusion.mini.dataset import SyntheticScenes
from problems.bevfusion.mini.geometry import CLASSES
from problems.bevfusion.mini.registry import DATASETS
from problems.bevfusion.mini.swin import WindowMSA as MiniWindowMSA
from problems.bevfusion.mmdet3d_adapter import ROLES as ROLE_NAMES
from problems.bevfusion.mmdet3d_adapter import (
    DetectorSpec,
    PendingBatch,
    bevfusion_mmdet3d_problem,
    detector_problem,
    ground_truth,
    open_samples,
    read_config,
    split_samples,
)
from problems.bevfusion.mmdet3d_report import report_samples, score_genomes, summarize
from problems.registry import validate_args

SCENES = 10
MMDET3D_YAML = (
    Path(__file__).parents[3] / "problems" / "configs" / "bevfusion_mmdet3d.yaml"
)
NUSCENES_VAL = 6019
ROLES = {"calibration": [0, 1], "fitness": "2:6", "validation": "rest"}


@DATASETS.register_module(force=True)
class NuScenesLikeScenes(SyntheticScenes):
    """mmdet3d's ``NuScenesDataset`` in test mode, as far as the adapter uses it."""

    def __init__(self, split: str, num_scenes: int, seed: int = 0) -> None:
        super().__init__(split, num_scenes, seed)
        self.metainfo = {"classes": CLASSES, "version": "v1.0-mini"}

    def _annotations(self, packed: dict) -> dict:
        truth = packed["data_samples"].gt_instances_3d
        return {
            "gt_bboxes_3d": truth.bboxes_3d,
            "gt_labels_3d": truth.labels_3d.numpy(),
        }

    def get_data_info(self, index: int) -> dict:
        packed = super().__getitem__(index)
        return {"token": f"sample-{index}", "eval_ann_info": self._annotations(packed)}

    def __getitem__(self, index: int) -> dict:
        packed = super().__getitem__(index)
        sample = packed["data_samples"]
        packed["data_samples"] = BaseDataElement(
            metainfo={**sample.metainfo, "sample_idx": index},
            eval_ann_info=self._annotations(packed),
        )
        return packed


class NuScenesMetricStandIn:
    """``process`` / ``compute_metrics`` as mmdet3d's NuScenesMetric has them; the
    figures are evoquant's detection scores against the dataset's annotations."""

    def __init__(self, dataset: NuScenesLikeScenes) -> None:
        self.dataset = dataset
        self.results: list[dict] = []
        self.processed = 0

    def process(self, data_batch: dict, data_samples: list[dict]) -> None:
        for sample in data_samples:
            pred = sample["pred_instances_3d"]
            self.results.append(
                {
                    "pred_instances_3d": {k: v.to("cpu") for k, v in pred.items()},
                    "sample_idx": sample["sample_idx"],
                }
            )
            self.processed += 1

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        truth = ground_truth(
            {
                "data_samples": [
                    BaseDataElement(
                        eval_ann_info=self.dataset.get_data_info(r["sample_idx"])[
                            "eval_ann_info"
                        ]
                    )
                    for r in results
                ]
            }
        )
        scores = detection_scores(
            [r["pred_instances_3d"] for r in results], truth, len(CLASSES), [3], [3]
        )
        names = ("NDS", "mAP", "mATE", "mASE", "mAOE", "mAVE")
        return {f"pred_instances_3d_NuScenes/{n}": scores[n] for n in names}


def write_config(directory: Path) -> Path:
    """The mini model's config plus a test dataloader, as an mmdet3d config has one."""
    path = directory / "mini_nus.py"
    path.write_text(
        f"_base_ = [{str(CONFIG)!r}]\n"
        "test_dataloader = dict(batch_size=1, num_workers=0, drop_last=False,\n"
        "    sampler=dict(type='DefaultSampler', shuffle=False),\n"
        "    dataset=dict(type='NuScenesLikeScenes', split='test',\n"
        f"        num_scenes={SCENES}))\n"
    )
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Config, samples, a .pth checkpoint of the shipped weights and the problem."""
    directory = tmp_path_factory.mktemp("mmdet3d_adapter")
    checkpoint = directory / "mini.pth"
    torch.save({"state_dict": load_file(WEIGHTS)}, checkpoint)
    cfg = read_config(str(write_config(directory)), {"default_scope": "bevfusion_mini"})
    source = open_samples(cfg, "test_dataloader")
    samples = split_samples(ROLES, len(source.dataset))
    detector = DetectorSpec(cfg, str(checkpoint), "cpu", window_msa=MiniWindowMSA)
    problem = detector_problem(detector, source, samples, 2, BoxErrors(0.3, 2.0, 0.5))
    return {
        "cfg": cfg,
        "checkpoint": checkpoint,
        "source": source,
        "samples": samples,
        "problem": problem,
        "model": problem.build_model(),
    }


def sample_indices(batch: dict) -> list[int]:
    return [s.metainfo["sample_idx"] for s in batch["data_samples"]]


def test_index_sets_become_batches_of_those_samples(setup):
    problem, samples = setup["problem"], setup["samples"]
    assert samples == {
        "calibration": (0, 1),
        "fitness": (2, 3, 4, 5),
        "validation": (6, 7, 8, 9),
    }
    assert [sample_indices(b) for b in problem.calibration_batches] == [[0, 1]]
    assert [sample_indices(b) for b in problem.fitness_batches] == [[2, 3], [4, 5]]
    assert all(isinstance(b, PendingBatch) for b in problem.validation_batches)
    assert [b.indices for b in problem.validation_batches] == [(6, 7), (8, 9)]


def test_runner_built_the_configs_dataloader_dataset(setup):
    assert isinstance(setup["source"].dataset, NuScenesLikeScenes)
    assert len(setup["source"].dataset) == SCENES


def test_disjoint_roles_leave_problems_overlap_check_silent(setup, caplog):
    problem = setup["problem"]
    with caplog.at_level(logging.WARNING):
        type(problem)(**{f: getattr(problem, f) for f in problem.__dataclass_fields__})
    assert not [r for r in caplog.records if "also" in r.getMessage()]


def test_pending_batches_are_fingerprinted_by_their_indices(setup):
    """evoquant validate counts and digests the validation samples without loading."""
    problem = setup["problem"]
    validation = sample_fingerprints(problem.validation_batches)
    assert len(validation) == 4
    assert not validation & sample_fingerprints(problem.calibration_batches)
    again = setup["source"].pending([6, 7, 8, 9], 4)
    assert sample_fingerprints(again) == validation
    assert sample_fingerprints(setup["source"].pending([5], 1)).isdisjoint(validation)


def test_report_samples_are_validation_or_held_out_rest(setup, tmp_path):
    args = {
        "config": setup["cfg"].filename,
        "checkpoint": str(setup["checkpoint"]),
        "cfg_options": {"default_scope": "bevfusion_mini"},
        "batch_size": 3,
        **ROLES,
        "validation": "8:",
    }
    _, batches = report_samples(args)
    assert [b.indices for b in batches] == [(8, 9)]
    _, batches = report_samples(args, "rest")
    assert [b.indices for b in batches] == [(6, 7, 8), (9,)]
    with pytest.raises(UserError, match="calibration and problem.args.validation"):
        report_samples(args, "::2")


def test_pending_batch_loads_the_same_samples_when_run(setup):
    problem, model = setup["problem"], setup["model"]
    pending = problem.validation_batches[0]
    direct = setup["source"].batch(pending.indices)
    assert sample_indices(pending.load()) == [6, 7]
    ran, reference = problem.run(model, pending), problem.run(model, direct)
    for a, b in zip(ran, reference):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_test_step_outputs_give_f_box(setup):
    problem, model = setup["problem"], setup["model"]
    reference = [problem.run(model, b) for b in problem.fitness_batches]
    assert problem.error_metrics(reference, reference) == {
        "f_box": 0.0,
        "e_center": 0.0,
        "e_yaw_size": 0.0,
    }
    moved = [
        [
            {**s, "bboxes_3d": s["bboxes_3d"] + torch.tensor([1.0] + [0.0] * 8)}
            for s in b
        ]
        for b in reference
    ]
    errors = problem.error_metrics(reference, moved)
    assert 0 < errors["e_center"] < 1 and errors["f_box"] > 0


def test_task_metric_reads_test_mode_ground_truth(setup):
    """eval_ann_info, not gt_instances_3d; same figures as the mini's own metric."""
    problem, model = setup["problem"], setup["model"]
    batches = problem.fitness_batches
    outputs = [problem.run(model, b) for b in batches]
    ours = problem.task_metric(outputs, batches)
    mini_style = [
        {
            "data_samples": [
                BaseDataElement(
                    gt_instances_3d=SyntheticScenes("test", SCENES)[i][
                        "data_samples"
                    ].gt_instances_3d
                )
                for i in sample_indices(b)
            ]
        }
        for b in batches
    ]
    assert ours == DetectionMetric(len(CLASSES), [3], [3])(outputs, mini_style)
    assert 0 < ours["mAP"] <= 1


def test_task_metric_on_pending_batches_does_not_reload(setup, monkeypatch):
    problem, model = setup["problem"], setup["model"]
    batches = problem.validation_batches
    outputs = [problem.run(model, b) for b in batches]
    monkeypatch.setattr(PendingBatch, "load", lambda self: pytest.fail("reloaded"))
    assert set(problem.task_metric(outputs, batches)) == {"mAP", "NDS"}


def test_detector_is_built_routed_and_checked(setup):
    model = setup["model"]
    names = [layer.name for layer in find_layers(model)]
    assert len(names) == 108 and not model.training
    assert names[3] == "img_backbone.stages.0.blocks.0.attn.w_msa.q_k_matmul"


def test_layer_map_mismatch_stops_the_build(setup, tmp_path):
    listing = tmp_path / "layers.tsv"
    listing.write_text("layer\ttype\nimg_backbone.patch_embed.projection\tconv2d\n")
    spec = DetectorSpec(
        setup["cfg"], str(setup["checkpoint"]), "cpu", str(listing), MiniWindowMSA
    )
    with pytest.raises(UserError, match=r"108 quantizable layers are not the 1 of"):
        spec()


def test_checkpoint_of_another_model_is_one_line(setup, tmp_path):
    wrong = tmp_path / "wrong.pth"
    weights = load_file(WEIGHTS)
    weights.pop("fusion_layer.0.weight")
    torch.save({"state_dict": weights}, wrong)
    with pytest.raises(UserError, match="does not fit the config's model") as error:
        DetectorSpec(setup["cfg"], str(wrong), "cpu", window_msa=MiniWindowMSA)()
    assert "\n" not in str(error.value)
    assert "missing keys in source state_dict: fusion_layer.0.weight" in str(
        error.value
    )


def test_missing_checkpoint_config_and_gpu(setup, tmp_path):
    with pytest.raises(UserError, match="checkpoint not found"):
        DetectorSpec(setup["cfg"], str(tmp_path / "none.pth"), "cpu")()
    with pytest.raises(UserError, match="mmdet3d config not found"):
        read_config(str(tmp_path / "none.py"))
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="torch sees no CUDA GPU"):
            DetectorSpec(setup["cfg"], str(setup["checkpoint"]))()


def test_unknown_dataloader_is_refused(setup):
    with pytest.raises(UserError, match="use test_dataloader or val_dataloader"):
        open_samples(setup["cfg"], "train_dataloader")


def test_score_genomes_feeds_the_metric_as_mmengines_evaluator(setup):
    """FP32 through process/compute_metrics equals the task metric on the same
    outputs; a quantized genome is scored with its weights and its bit cost."""
    problem, model = setup["problem"], setup["model"]
    batches = problem.validation_batches
    fp32_outputs = [problem.run(model, b) for b in batches]
    expected = detection_scores(
        flatten(fp32_outputs),
        [gt for b in batches for gt in b.ground_truth()],
        len(CLASSES),
        [3],
        [3],
    )
    layers = find_layers(model)
    table = build_quant_table(
        model,
        layers,
        problem.run,
        problem.calibration_batches,
        QuantConfig(bit_configs=[(4, 8), (8, 8)], alpha=AlphaConfig(enabled=False)),
    )
    metric = NuScenesMetricStandIn(setup["source"].dataset)
    quantized = QuantizedModel(model, table)
    try:
        rows = score_genomes(
            quantized, layers, {"FP32": None, "W4A8": [(4, 8)] * 108}, batches, metric
        )
    finally:
        quantized.remove()
    fp32, w4 = rows
    assert fp32["NDS"] == expected["NDS"] and fp32["mAP"] == expected["mAP"]
    assert fp32["relative_cost"] == 1.0 and w4["relative_cost"] == 0.125
    assert w4["metrics"] != fp32["metrics"]
    assert summarize(w4["metrics"])["NDS"] == w4["NDS"]
    assert metric.processed == 2 * 4 and metric.results == []


def test_problem_args_validate_without_mmdet3d():
    args = validate_args(
        "bevfusion_mmdet3d",
        {"config": "c.py", "checkpoint": "m.pth", "fitness": [3, 4], "batch_size": 2},
    )
    assert args["fitness"] == [3, 4]
    with pytest.raises(UserError, match="argument batch_size"):
        validate_args(
            "bevfusion_mmdet3d",
            {"config": "c.py", "checkpoint": "m.pth", "batch_size": "two"},
        )


HAS_MMDET3D = importlib.util.find_spec("mmdet3d") is not None


@pytest.mark.skipif(HAS_MMDET3D, reason="mmdet3d is installed")
def test_factory_without_mmdet3d_is_one_line():
    with pytest.raises(UserError, match=r"needs mmcv|needs mmdet") as error:
        bevfusion_mmdet3d_problem("c.py", "m.pth")
    assert "docs/bevfusion.md" in str(error.value)


REAL = {
    name: os.environ.get(f"EVOQUANT_BEVFUSION_{name.upper()}")
    for name in ("config", "checkpoint", "mmdet3d_root")
}


@pytest.mark.skipif(
    not (HAS_MMDET3D and torch.cuda.is_available() and REAL["config"]),
    reason="needs mmdet3d, a CUDA GPU and EVOQUANT_BEVFUSION_CONFIG / _CHECKPOINT / "
    "_MMDET3D_ROOT naming an mmdetection3d checkout's BEVFusion config and checkpoint",
)
def test_real_bevfusion_has_the_thesis_genome_and_reproduces_fp32():
    problem = bevfusion_mmdet3d_problem(
        REAL["config"],
        REAL["checkpoint"],
        mmdet3d_root=REAL["mmdet3d_root"],
        calibration=[0],
        fitness=[1],
        validation=[2],
    )
    model = problem.build_model()  # checks the layer map (strict)
    assert len(find_layers(model)) == 108
    batch = problem.fitness_batches[0]
    first, second = problem.run(model, batch), problem.run(model, batch)
    assert problem.error_metrics([first], [second])["f_box"] == 0.0


# Calibration, fitness and validation as disjoint sets of dataset sample indices.


def test_defaults_on_nuscenes_val_are_disjoint():
    defaults = inspect.signature(bevfusion_mmdet3d_problem).parameters
    samples = split_samples(
        {role: defaults[role].default for role in ROLE_NAMES}, NUSCENES_VAL
    )
    calibration, fitness, validation = samples.values()
    assert (len(calibration), len(fitness), len(validation)) == (21, 20, 40)
    assert calibration[:3] == (0, 300, 600) and fitness[:2] == (150, 450)
    assert validation[:3] == (75, 225, 375) and validation[-1] == 5925


def test_rest_is_every_sample_the_others_leave():
    samples = split_samples(
        {"calibration": "0::300", "fitness": "150::300", "validation": "rest"},
        NUSCENES_VAL,
    )
    calibration, fitness, validation = samples.values()
    assert len(validation) == NUSCENES_VAL - 41
    assert sorted(calibration + fitness + validation) == list(range(NUSCENES_VAL))


def test_slices_follow_python_and_lists_are_kept_in_order():
    samples = split_samples(
        {"calibration": [6, 2], "fitness": "-3:", "validation": "3:6"}, 10
    )
    assert samples == {
        "calibration": (6, 2),
        "fitness": (7, 8, 9),
        "validation": (3, 4, 5),
    }


@pytest.mark.parametrize(
    "specs, message",
    [
        (
            {"calibration": "0:4", "fitness": "2:6", "validation": []},
            (
                r"^problem.args.calibration and problem.args.fitness share 2 "
                r"sample\(s\) \(e.g. 2, 3\): calibration, fitness, validation "
                r"samples must be disjoint$"
            ),
        ),
        (
            {"calibration": "0:2", "fitness": "2:4", "validation": [1, 5]},
            "calibration and problem.args.validation share 1",
        ),
        (
            {"calibration": "rest", "fitness": "0:2", "validation": "rest"},
            "only one of problem.args.calibration, problem.args.validation may",
        ),
        (
            {"calibration": "0:2", "fitness": "8:", "validation": [10]},
            r"problem.args.validation: index 10 is not one of the dataset's 10 samples",
        ),
        (
            {"calibration": [1, 1], "fitness": "8:", "validation": []},
            "problem.args.calibration lists sample 1 more than once",
        ),
        (
            {"calibration": "0:2", "fitness": "20:", "validation": []},
            "problem.args.fitness selects none of the dataset's 10 samples",
        ),
        (
            {"calibration": "first", "fitness": "2:", "validation": []},
            "problem.args.calibration 'first' is not 'rest', 'start:stop:step'",
        ),
        (
            {"calibration": "::0", "fitness": "2:", "validation": []},
            "problem.args.calibration '::0' is not",
        ),
    ],
)
def test_mistakes_are_one_line(specs, message):
    with pytest.raises(UserError, match=message) as error:
        split_samples(specs, 10)
    assert "\n" not in str(error.value)


def test_rest_may_be_empty_for_validation():
    samples = split_samples(
        {"calibration": "0:5", "fitness": "5:", "validation": "rest"}, 10
    )
    assert samples["validation"] == ()


# The config users copy for mmdet3d's BEVFusion loads; its preset names real genes.


def test_config_validates_without_mmdet3d():
    config = load_config(MMDET3D_YAML)
    assert config.problem.name == "bevfusion_mmdet3d"
    assert config.error == "f_box"
    assert (config.search.pop_size, config.search.generations) == (100, 50)


def test_cuda_bevfusion_preset_pins_a_genome_layer_out_of_int8():
    """NVIDIA's PTQ keeps decoder.neck.deblocks[0][0] (mmdet3d: pts_neck.deblocks.0.0)
    out of INT8; its other exception is a sparse 3D conv outside the genome."""
    config = load_config(MMDET3D_YAML)
    assert config.layers.fixed == {"pts_neck.deblocks.0.0": 16}
    names = [name for name, _ in thesis_layers()]
    assert set(config.layers.fixed) <= set(names)
    assert not any(name.startswith("pts_middle_encoder") for name in names)


def test_sample_sets_are_the_factorys_defaults():
    defaults = inspect.signature(bevfusion_mmdet3d_problem).parameters
    args = load_config(MMDET3D_YAML).problem.args
    for role in ("calibration", "fitness", "validation", "batch_size", "layer_map"):
        assert args[role] == defaults[role].default
