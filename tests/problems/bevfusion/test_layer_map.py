"""The layer-map check: the thesis list as package data, and one line on a mismatch."""

from importlib.resources import files

import pytest

from evoquant.errors import UserError
from evoquant.quant.layers import Layer, find_layers
from problems.bevfusion.layer_map import (
    check_layer_map,
    layer_differences,
    parse_layer_list,
    thesis_layers,
)


def as_layers(rows):
    return [Layer(name, kind, 0 if kind == "matmul" else 1) for name, kind in rows]


def test_thesis_list_ships_with_the_package():
    text = files("problems.bevfusion").joinpath("thesis_108_layers.tsv").read_text()
    assert text.startswith("# The reference thesis's appendix")
    rows = thesis_layers()
    assert len(rows) == len(set(rows)) == 108
    assert rows[0] == ("img_backbone.patch_embed.projection", "conv2d")
    assert rows[-1] == ("bbox_head.decoder.0.ffn.layers.1", "linear")
    assert sum(kind == "matmul" for _, kind in rows) == 24


def test_mini_model_passes_strict(untrained_model):
    check_layer_map(find_layers(untrained_model), "strict")


def test_a_missing_layer_is_reported_with_its_position_and_the_keys():
    rows = thesis_layers()
    del rows[3]  # the first q_k_matmul: the WindowMSA surgery did not run
    with pytest.raises(UserError) as error:
        check_layer_map(as_layers(rows))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        "the model's 107 quantizable layers are not the 108 of the thesis appendix: "
        "#4 is img_backbone.stages.0.blocks.0.attn.w_msa.attn_v_matmul (matmul), "
        "expected img_backbone.stages.0.blocks.0.attn.w_msa.q_k_matmul (matmul); #5 "
    )
    assert "set problem.args.layer_map to 'off' or to a TSV file" in message
    assert message.count("#") == 3


def test_order_and_kind_count_too():
    rows = thesis_layers()
    swapped = [rows[1], rows[0], *rows[2:]]
    assert layer_differences(swapped, rows)[0].startswith(
        "#1 is img_backbone.stages.0.blocks.0.attn.w_msa.qkv (linear)"
    )
    retyped = [(rows[0][0], "linear"), *rows[1:]]
    assert layer_differences(retyped, rows) == [
        (
            "#1 is img_backbone.patch_embed.projection (linear), "
            "expected img_backbone.patch_embed.projection (conv2d)"
        )
    ]
    longer = [*rows, ("extra.conv", "conv2d")]
    assert layer_differences(longer, rows) == [
        "#109 is extra.conv (conv2d), expected nothing"
    ]


def test_off_and_an_explicit_file(tmp_path):
    rows = [("a.conv", "conv2d"), ("b.fc", "linear")]
    check_layer_map(as_layers(rows), "off")
    listing = tmp_path / "mine.tsv"
    listing.write_text(
        "# my model\nid\tlayer\ttype\n1\ta.conv\tconv2d\n2\tb.fc\tlinear\n"
    )
    check_layer_map(as_layers(rows), str(listing))
    with pytest.raises(UserError, match=r"not the 2 of .*mine.tsv: #2 is nothing"):
        check_layer_map(as_layers(rows[:1]), str(listing))


def test_bad_settings_are_one_line(tmp_path):
    with pytest.raises(UserError, match=r"'loose' is not a file: use 'strict'"):
        check_layer_map([], "loose")
    bad = tmp_path / "bad.tsv"
    bad.write_text("name\tkind\n")
    with pytest.raises(
        UserError, match="needs tab-separated columns 'layer' and 'type'"
    ):
        parse_layer_list(bad.read_text(), str(bad))
