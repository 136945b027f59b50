import torch
from mmengine.config import Config
from mmengine.registry import MODELS as ROOT_MODELS

from evoquant.quant.layers import find_layers
from problems.bevfusion.layer_map import thesis_layers
from problems.bevfusion.mini.checkpoint import CONFIG, initialised_model
from problems.bevfusion.mini.head import HEATMAP_PRIOR_BIAS
from problems.bevfusion.mini.model import BEVFusionMini
from problems.bevfusion.mini.registry import DATASETS, MODELS


def test_model_and_dataset_build_from_an_mmengine_config():
    config = Config.fromfile(str(CONFIG))
    assert isinstance(MODELS.build(config.model), BEVFusionMini)
    assert len(DATASETS.build(config.test_dataset)) == 64
    assert MODELS.parent is ROOT_MODELS


def _kurtosis(weight: torch.Tensor) -> float:
    values = weight.detach().flatten()
    centred = values - values.mean()
    return float((centred**4).mean() / (centred**2).mean() ** 2)


def test_init_weights_uses_openmmlab_normal_inits_and_keeps_heatmap_priors():
    torch.manual_seed(0)
    model = initialised_model()
    linear = model.img_backbone.stages[2].blocks[0].ffn.layers[1]
    assert abs(linear.weight.std().item() - 0.02) < 0.002  # mmdet Swin: trunc normal
    assert not linear.bias.any()
    conv = model.pts_backbone.blocks[1][3]
    fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
    kaiming_std = (2 / fan_out) ** 0.5  # mmcv Kaiming: normal, fan_out, ReLU gain
    assert abs(conv.weight.std().item() / kaiming_std - 1) < 0.05
    # bell-shaped (normal: 3), not PyTorch's default uniform (1.8)
    assert _kurtosis(linear.weight) > 2.6 and _kurtosis(conv.weight) > 2.6
    head = model.bbox_head
    for bias in (head.heatmap_head[1].bias, head.prediction_heads[0].heatmap[-1].bias):
        assert torch.all(bias == HEATMAP_PRIOR_BIAS)


def test_test_step_returns_mmdet3d_style_predictions(untrained_model, test_batch):
    gt_before = [
        s.gt_instances_3d.bboxes_3d.clone() for s in test_batch["data_samples"]
    ]
    with torch.no_grad():
        samples = untrained_model.test_step(test_batch)
    assert len(samples) == 4
    proposals = untrained_model.bbox_head.num_proposals
    for sample, before in zip(samples, test_batch["data_samples"]):
        pred = sample.pred_instances_3d
        assert pred.bboxes_3d.shape == (proposals, 9)
        assert pred.scores_3d.shape == pred.labels_3d.shape == (proposals,)
        assert ((pred.scores_3d >= 0) & (pred.scores_3d <= 1)).all()
        assert "pred_instances_3d" not in before  # the stored batch is left untouched
    for sample, gt in zip(test_batch["data_samples"], gt_before):
        assert torch.equal(sample.gt_instances_3d.bboxes_3d, gt)


# The mini model's genome is the thesis appendix's 108 layers, in order.
def test_layers_equal_the_thesis_appendix(untrained_model):
    layers = find_layers(untrained_model)
    assert [(layer.name, layer.kind) for layer in layers] == thesis_layers()
    assert len(layers) == 108


def test_main_module_counts(untrained_model):
    counts: dict[str, int] = {}
    for layer in find_layers(untrained_model):
        counts[layer.main_module] = counts.get(layer.main_module, 0) + 1
    assert counts == {
        "img_backbone": 76,
        "img_neck": 4,
        "view_transform": 9,
        "fusion_layer": 1,
        "pts_backbone": 12,
        "pts_neck": 1,
        "bbox_head": 5,
    }


def test_unquantized_parts_hold_no_quantizable_layer(untrained_model):
    names = [layer.name for layer in find_layers(untrained_model)]
    for prefix in ("pts_voxel_encoder", "pts_middle_encoder", "pts_neck.deblocks.1"):
        assert not any(name.startswith(prefix) for name in names)
    assert not any("attn" in n for n in names if n.startswith("bbox_head"))
    assert not any("prediction_heads" in n for n in names)
