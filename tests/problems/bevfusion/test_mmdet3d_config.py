"""The config users copy for mmdet3d's BEVFusion loads; its preset names real genes."""

import inspect
from pathlib import Path

from evoquant.config import load_config
from problems.bevfusion.layer_map import thesis_layers
from problems.bevfusion.mmdet3d_adapter import bevfusion_mmdet3d_problem

CONFIG = Path(__file__).parents[3] / "problems" / "configs" / "bevfusion_mmdet3d.yaml"


def test_config_validates_without_mmdet3d():
    config = load_config(CONFIG)
    assert config.problem.name == "bevfusion_mmdet3d"
    assert config.error == "f_box"
    assert (config.search.pop_size, config.search.generations) == (100, 50)


def test_cuda_bevfusion_preset_pins_a_genome_layer_out_of_int8():
    """NVIDIA's PTQ keeps decoder.neck.deblocks[0][0] (mmdet3d: pts_neck.deblocks.0.0)
    out of INT8; its other exception is a sparse 3D conv outside the genome."""
    config = load_config(CONFIG)
    assert config.layers.fixed == {"pts_neck.deblocks.0.0": 16}
    names = [name for name, _ in thesis_layers()]
    assert set(config.layers.fixed) <= set(names)
    assert not any(name.startswith("pts_middle_encoder") for name in names)


def test_sample_sets_are_the_factorys_defaults():
    defaults = inspect.signature(bevfusion_mmdet3d_problem).parameters
    args = load_config(CONFIG).problem.args
    for role in ("calibration", "fitness", "validation", "batch_size", "layer_map"):
        assert args[role] == defaults[role].default
