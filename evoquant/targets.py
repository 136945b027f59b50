"""What TensorRT can execute, per layer kind: the rules behind ``target: tensorrt`` and promotion.

Below both the engine (config, space) and export: the search space and the exporter
read the same rules from here.

TensorRT's explicit quantization is symmetric (zero-point 0). Per layer kind it runs:

* INT8 weights (per output channel) with INT8 activations (per tensor): W8A8;
* FP16 weights and activations (casts in the graph): W16A16;
* INT4 weight-only with FP16 activations (W4A16), only for MatMul/Gemm weights whose
  reduction dimension splits into blocks of 128 or 64 (per-block scales).

It has no INT2 and no INT4 convolution, so a gene it cannot honour is *promoted*: the
cheapest supported configuration at least as precise in both weights and activations.
Weightless MatMul layers (attention products) only have activations, so their weight
bits never count as a promotion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from evoquant.registry import TARGETS

BitConfig = tuple[int, int]
ToConfigs = Callable[[Sequence[int]], list[BitConfig]]
"""A genome's bit list -> per layer ``(weight bits, activation bits)``
(``SearchSpace.bit_configs``): how evaluators and reports turn the one genome form that
crosses module borders into what the fitness takes and what a deployment runs."""

INT4_BLOCK_SIZES = (128, 64)
"""Block sizes TensorRT accepts for INT4 weights, preferred first."""

W4A16: BitConfig = (4, 16)
W8A8: BitConfig = (8, 8)
W16A16: BitConfig = (16, 16)

PRECISIONS = {W4A16: "int4w-fp16", W8A8: "int8", W16A16: "fp16"}
"""How each deployable configuration runs, as written in reports."""


def layer_block_size(reduction: int, block_size: int) -> int:
    """The block a weight with rows of ``reduction`` values is cut into.

    ``block_size`` if it divides the rows, else the largest smaller size TensorRT takes
    that does (128 -> 64, as TensorRT deploys), else ``block_size`` with a shorter last
    block.
    """
    sizes = [block_size, *(b for b in INT4_BLOCK_SIZES if b < block_size)]
    return next((b for b in sizes if reduction % b == 0), block_size)


def int4_block_size(
    kind: str, weight_shape: Sequence[int], block_size: int = INT4_BLOCK_SIZES[0]
) -> int | None:
    """The INT4 block size along the reduction dimension of a Linear weight, None if INT4
    cannot run; ``block_size`` is the one the search quantized with (``layer_block_size``)."""
    if kind != "linear" or len(weight_shape) != 2:
        return None
    block = layer_block_size(weight_shape[1], block_size)
    if block in INT4_BLOCK_SIZES and weight_shape[1] % block == 0:
        return block
    return None


def deployable_configs(kind: str, weight_shape: Sequence[int]) -> tuple[BitConfig, ...]:
    """Every (weight, activation) bit config TensorRT runs for this layer, cheapest first."""
    if int4_block_size(kind, weight_shape) is not None:
        return (W4A16, W8A8, W16A16)
    return (W8A8, W16A16)


def activation_bits(weight_bits: int) -> int:
    """Under the TensorRT target a gene fixes both widths: INT4 is weight-only (FP16 activations)."""
    return 8 if weight_bits == 8 else 16


def deploy(config: BitConfig, kind: str, weight_shape: Sequence[int]) -> BitConfig:
    """The cheapest supported config with weights and activations at least as precise as ``config``.

    A weightless layer is judged by its activations alone.
    """
    weights, acts = config
    if kind == "matmul":
        weights = 0
    return min(
        c
        for c in deployable_configs(kind, weight_shape)
        if c[0] >= weights and c[1] >= acts
    )


def is_promotion(searched: BitConfig, deployed: BitConfig, kind: str) -> bool:
    """Whether deployment changes the numerics (weightless layers: activations only)."""
    if kind == "matmul":
        return searched[1] != deployed[1]
    return searched != deployed


def promotion_reason(
    searched: BitConfig, deployed: BitConfig, kind: str, weight_shape: Sequence[int]
) -> str:
    """Why TensorRT cannot run ``searched`` as is ("" when it can)."""
    if not is_promotion(searched, deployed, kind):
        return ""
    weights, acts = searched
    reasons = []
    if weights == 2:
        reasons.append("TensorRT has no INT2")
    elif weights == 4 and deployed != W4A16:
        reasons.append(
            f"TensorRT runs INT4 only as weight-only MatMul/Gemm, not {kind}"
            if kind != "linear"
            else "INT4 blocks need the input features divisible by "
            f"{' or '.join(map(str, INT4_BLOCK_SIZES))} (has {weight_shape[1]})"
        )
    if deployed == W4A16 and acts < 16:
        reasons.append("INT4 is weight-only: activations run in FP16")
    if not reasons:
        supported = ", ".join(
            f"W{w}A{a}" for w, a in deployable_configs(kind, weight_shape)
        )
        reasons.append(f"TensorRT runs {supported} for {kind}, not W{weights}A{acts}")
    return "; ".join(reasons)


class Target:
    """A deployment target as the search space reads it (``target:`` names one in
    ``TARGETS``): the configs it runs per layer and the activation width a weight
    gene implies."""

    name = ""

    @staticmethod
    def deployable_configs(
        kind: str, weight_shape: Sequence[int]
    ) -> tuple[BitConfig, ...]:
        raise NotImplementedError

    @staticmethod
    def activation_bits(weight_bits: int) -> int:
        raise NotImplementedError


@TARGETS.register_module("tensorrt")
class TensorRT(Target):
    """TensorRT's rules: this module's."""

    name = "tensorrt"
    deployable_configs = staticmethod(deployable_configs)
    activation_bits = staticmethod(activation_bits)
