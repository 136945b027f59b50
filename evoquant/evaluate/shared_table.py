"""A QuantTable as numpy arrays, for Ray's object store.

Ray hands numpy arrays to every worker of a node zero-copy from shared memory, while
torch tensors would be unpickled into one private copy per worker. The driver puts the
table once as arrays; each worker views them as tensors again without copying. The
views are read-only: the quantized model only reads them. What is shared is the table's
small form, the weights' packed integer codes; each worker decodes them into float
weights once, when it builds its QuantizedModel.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from evoquant.quant.table import QuantTable


def _convert(value: Any, kind: type, convert: Callable[[Any], Any]) -> Any:
    """``value`` with every ``kind`` inside (dataclass fields, dicts, lists, tuples) converted."""
    if isinstance(value, kind):
        return convert(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _convert(getattr(value, f.name), kind, convert)
            for f in dataclasses.fields(value)
            if f.init
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, dict):
        return {key: _convert(item, kind, convert) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_convert(item, kind, convert) for item in value)
    return value


def to_arrays(table: QuantTable) -> QuantTable:
    """The table with every tensor replaced by a CPU numpy array (what ``ray.put`` gets)."""
    return _convert(table, torch.Tensor, lambda t: t.detach().cpu().numpy())


def from_arrays(table: QuantTable) -> QuantTable:
    """The inverse of ``to_arrays``: tensors viewing the (read-only) arrays, no copy."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="The given NumPy array is not writable"
        )
        return _convert(table, np.ndarray, torch.from_numpy)
