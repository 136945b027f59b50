"""mmengine registries of the mini BEVFusion, children of mmengine's root ones.

The same pattern as mmdet3d (``Registry('model', parent=MMENGINE_MODELS, ...)``), so
the model and the dataset are built by name from an mmengine ``Config``.
"""

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    "model",
    parent=MMENGINE_MODELS,
    scope="bevfusion_mini",
    locations=["problems.bevfusion.mini.model"],
)
DATASETS = Registry(
    "dataset",
    parent=MMENGINE_DATASETS,
    scope="bevfusion_mini",
    locations=["problems.bevfusion.mini.dataset"],
)
