"""The genome a BEVFusion model must have: the thesis appendix's 108 layers, in order.

The list ships as package data (``thesis_108_layers.tsv``). A real model whose
quantizable layers differ (another config, another mmdet3d version, a missed module
surgery) would silently search another genome than the thesis's, so the adapter checks
it when the model is built and stops with the first differences.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from importlib.resources import files
from itertools import zip_longest
from pathlib import Path

from evoquant.errors import UserError
from evoquant.quant.layers import Layer

THESIS_LAYERS = "thesis_108_layers.tsv"
"""The reference thesis's appendix list, beside this module."""

LAYER_MAP_KEY = "problem.args.layer_map"
LAYER_MAP_SETTINGS = "'strict' (the thesis list), 'off' or a TSV file of layers"

LayerRow = tuple[str, str]
"""(dotted layer name, op kind)."""


def parse_layer_list(text: str, source: str) -> list[LayerRow]:
    """(layer, type) rows of a tab-separated list with ``layer`` and ``type`` columns.

    Lines starting with ``#`` are comments; other columns (``id``, ``module``) are
    ignored.
    """
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    reader = csv.DictReader(lines, delimiter="\t")
    if not {"layer", "type"} <= set(reader.fieldnames or ()):
        raise UserError(f"{source}: needs tab-separated columns 'layer' and 'type'")
    return [(row["layer"], row["type"]) for row in reader]


def thesis_layers() -> list[LayerRow]:
    """The thesis appendix's 108 (layer, type) rows in genome order."""
    text = files("problems.bevfusion").joinpath(THESIS_LAYERS).read_text("utf-8")
    return parse_layer_list(text, THESIS_LAYERS)


def expected_layers(setting: str) -> tuple[list[LayerRow], str] | None:
    """The rows ``setting`` asks for and where they come from; None when it is 'off'."""
    if setting == "off":
        return None
    if setting == "strict":
        return thesis_layers(), "the thesis appendix"
    path = Path(setting)
    if not path.is_file():
        raise UserError(
            f"{LAYER_MAP_KEY} {setting!r} is not a file: use {LAYER_MAP_SETTINGS}"
        )
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {LAYER_MAP_KEY} file {path}: {error}") from None
    return parse_layer_list(text, str(path)), str(path)


def _describe(row: LayerRow | None) -> str:
    return "nothing" if row is None else f"{row[0]} ({row[1]})"


def layer_differences(
    actual: Sequence[LayerRow], expected: Sequence[LayerRow], limit: int = 3
) -> list[str]:
    """The first ``limit`` genome positions (1-based) where the two lists differ."""
    return [
        f"#{position} is {_describe(got)}, expected {_describe(want)}"
        for position, (got, want) in enumerate(zip_longest(actual, expected), 1)
        if got != want
    ][:limit]


def check_layer_map(layers: Sequence[Layer], setting: str = "strict") -> None:
    """Refuse, in one line, a model whose quantizable layers are not the expected."""
    expected = expected_layers(setting)
    if expected is None:
        return
    rows, source = expected
    actual = [(layer.name, layer.kind) for layer in layers]
    differences = layer_differences(actual, rows)
    if not differences:
        return
    raise UserError(
        f"the model's {len(actual)} quantizable layers are not the {len(rows)} of "
        f"{source}: {'; '.join(differences)}; set {LAYER_MAP_KEY} to 'off' or to a "
        "TSV file of your model's layers (columns layer, type)"
    )
