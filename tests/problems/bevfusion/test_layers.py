"""The mini model's genome is the thesis appendix's 108 layers, in order."""

from evoquant.quant.layers import find_layers
from problems.bevfusion.layer_map import thesis_layers


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
