"""Per layer: what the genome searched, what TensorRT will run, and why they differ."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evoquant import targets as support
from evoquant.errors import UserError
from evoquant.quant.layers import Layer
from evoquant.space import SearchSpace
from evoquant.targets import BitConfig


@dataclass(frozen=True)
class LayerPlan:
    """One layer's deployment: searched and deployed (weight, activation) bits."""

    name: str
    kind: str
    searched: BitConfig
    deployed: BitConfig
    reason: str
    """Why the searched config was promoted; empty when it deploys as is."""
    block_size: int | None

    @property
    def promoted(self) -> bool:
        return bool(self.reason)

    @property
    def precision(self) -> str:
        return support.PRECISIONS[self.deployed]


def genome_configs(
    point: Mapping[str, Any],
    layer_names: Sequence[str],
    space: Callable[[], SearchSpace],
) -> list[BitConfig]:
    """A front point's per-layer (weight, activation) bits, as the search resolved them
    (``front.json``'s ``configs``), in ``layer_names`` order."""
    configs = point.get("configs")
    if configs is None:
        return _resolve_genes(point, space())
    try:
        resolved = [(int(w), int(a)) for w, a in (configs[n] for n in layer_names)]
    except (KeyError, TypeError, ValueError):
        resolved = None
    if resolved is None or len(configs) != len(layer_names):
        raise UserError(
            "the front point's configs do not match the run's layers: expected "
            f"{len(layer_names)} layers, each [weight bits, activation bits]"
        )
    return resolved


def _resolve_genes(point: Mapping[str, Any], space: SearchSpace) -> list[BitConfig]:
    """For fronts without ``configs``: run dirs written before front.json carried them,
    and a front ``evoquant plot`` redrew without an earlier ``front.json`` to keep them
    from (it builds no search space)."""
    bits = point["bits"]
    missing = [name for name in space.gene_names if name not in bits]
    if missing or len(bits) != space.n_genes:
        raise UserError(
            f"the front point's genes do not match the run's layers (e.g. {missing[:1]})"
        )
    return space.bit_configs([int(bits[name]) for name in space.gene_names])


def plan_layers(
    layers: Sequence[Layer],
    configs: Sequence[BitConfig],
    weight_shapes: Mapping[str, Sequence[int]],
    block_size: int = support.INT4_BLOCK_SIZES[0],
) -> list[LayerPlan]:
    """Promote every config TensorRT cannot run to the nearest one it can.

    ``block_size``: ``quant.weights.block_size``, the INT4 blocks the search modelled.
    """
    plans = []
    for layer, searched in zip(layers, configs):
        shape = tuple(weight_shapes.get(layer.name, ()))
        deployed = support.deploy(searched, layer.kind, shape)
        plans.append(
            LayerPlan(
                layer.name,
                layer.kind,
                tuple(searched),
                deployed,
                support.promotion_reason(searched, deployed, layer.kind, shape),
                support.int4_block_size(layer.kind, shape, block_size)
                if deployed == support.W4A16
                else None,
            )
        )
    return plans
