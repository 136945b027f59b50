"""QuantizedModel: switch an FP32 model between bit configurations without recomputing.

Every quantizable layer gets one forward pre-hook (fake-quantizes its inputs with
the active config's quantizers) and has its ``weight`` Parameter swapped for the
fake-quantized one of the active config. Those are decoded from the table's integer
codes once, here at construction (once per worker), so ``apply`` only rebinds
references and an evaluation costs what it did when the table held float copies.

``compiled=True`` runs the model through ``torch.compile`` with the quantizers held as
tensors (``traced``): eager quantize-dequantize is four passes over every input, which
on a small model is a tenth of its forward; compiled, they fuse into the kernels
around them. A model run through another method than its forward (mmengine's
``test_step``) has its ``parts`` compiled instead, the tensor sub-networks its
problem exports one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import torch
from torch import Tensor, nn

from evoquant.errors import UserError
from evoquant.quant.alpha import BitConfig
from evoquant.quant.fakequant import QParams, fake_quantize
from evoquant.quant.table import LayerEntry, QuantTable
from evoquant.quant.traced import TensorQuantizer, compile_for_this_cpu

Gene = int | BitConfig | None
"""Weight bits (the table's config with that weight width), an explicit (w, a), or None = FP32."""
WRAPPED = "_evoquant_wrapped"
"""Set on a model while a QuantizedModel owns it: its weights may then be quantized ones."""


class _ActiveLayer:
    """A layer's FP32 weight and the prepared (weight, input quantizers) of each config."""

    def __init__(
        self,
        module: nn.Module,
        table: QuantTable,
        name: str,
        model_device: torch.device,
        compiled: bool,
    ):
        self.module = module
        self.fp32_weight = getattr(module, "weight", None)
        # a weightless layer (an attention matmul) computes on the model's device
        device = model_device if self.fp32_weight is None else self.fp32_weight.device
        self.configs: dict[
            BitConfig, tuple[nn.Parameter | None, tuple[QParams, ...]]
        ] = {}
        for config in table.bit_configs:
            entry = table.entry(name, config)
            self.configs[config] = (
                _as_parameter(entry, device),
                _to(entry.input_qparams, device),
            )
        self.inputs: tuple[QParams, ...] | None = None
        self.tensor_configs = {
            config: tuple(TensorQuantizer.of(qp) for qp in inputs)
            for config, (_, inputs) in self.configs.items()
            if compiled
        }
        self.tensor_fp32 = tuple(
            q.off() for q in next(iter(self.tensor_configs.values()), ())
        )
        self.tensor_inputs = self.tensor_fp32

    def select(self, config: BitConfig | None) -> None:
        weight, self.inputs = (
            (self.fp32_weight, None) if config is None else self.configs[config]
        )
        self.tensor_inputs = self.tensor_configs.get(config, self.tensor_fp32)
        if self.fp32_weight is not None:
            self.module._parameters["weight"] = weight

    def quantize_inputs(self, module: nn.Module, args: tuple) -> tuple | None:
        if self.inputs is None:
            return None
        return tuple(
            fake_quantize(x, qp) if isinstance(x, Tensor) else x
            for x, qp in zip(args, self.inputs)
        )

    def quantize_inputs_traced(self, module: nn.Module, args: tuple) -> tuple:
        """The hook of the compiled mode: no branch on the config, only tensors."""
        return tuple(
            quantize(x) if isinstance(x, Tensor) else x
            for x, quantize in zip(args, self.tensor_inputs)
        )


def _as_parameter(entry: LayerEntry, device: torch.device) -> nn.Parameter | None:
    if entry.weight is None:
        return None
    return nn.Parameter(entry.weight.to(device), requires_grad=False)


def _to(quantizers: tuple[QParams, ...], device: torch.device) -> tuple[QParams, ...]:
    return tuple(
        QParams(
            qp.scale.to(device),
            qp.zero_point.to(device),
            qp.qmin,
            qp.qmax,
            qp.axis,
            qp.fp16,
        )
        for qp in quantizers
    )


class QuantizedModel:
    """Wraps an FP32 model (in place) so that ``apply(genome)`` selects per-layer precisions.

    Run it through ``runnable``: the model, or with ``compiled`` and no ``parts`` its
    ``torch.compile``d forward (which a problem calling another method, such as
    mmengine's ``test_step``, would bypass: give those the parts to compile).
    """

    def __init__(
        self,
        model: nn.Module,
        table: QuantTable,
        compiled: bool = False,
        parts: Sequence[str] = (),
    ):
        if getattr(model, WRAPPED, False):
            raise UserError(
                "model is already wrapped by a QuantizedModel (its weights may be "
                "quantized): call remove() on that one first, or wrap a fresh model"
            )
        modules = dict(model.named_modules())
        missing = [name for name in table.layers if name not in modules]
        if missing:
            raise UserError(
                f"quantization table names layers the model lacks: {missing[:3]}"
            )
        self.model = model
        self.table = table
        device = next(model.parameters(), torch.empty(0)).device
        self._layers = [
            _ActiveLayer(modules[name], table, name, device, compiled)
            for name in table.layers
        ]
        self._handles = [
            layer.module.register_forward_pre_hook(
                layer.quantize_inputs_traced if compiled else layer.quantize_inputs
            )
            for layer in self._layers
        ]
        self._compiled_parts = [model.get_submodule(name) for name in parts if compiled]
        for part in self._compiled_parts:
            part.forward = compile_for_this_cpu(part.forward)
        self.runnable: nn.Module = (
            compile_for_this_cpu(model) if compiled and not parts else model
        )
        self._by_weight_bits = _unique_weight_widths(table.bit_configs)
        setattr(model, WRAPPED, True)

    def apply(self, genome: Sequence[Gene] | None) -> list[BitConfig | None]:
        """Select each layer's config; ``None`` (whole genome or one gene) means exact FP32.

        Returns the per-layer configs the genome resolved to.
        """
        configs = [None] * len(self._layers) if genome is None else self.resolve(genome)
        for layer, config in zip(self._layers, configs):
            layer.select(config)
        return configs

    def resolve(self, genome: Sequence[Gene]) -> list[BitConfig | None]:
        """Validate a genome against the table and turn each gene into a bit config."""
        if len(genome) != len(self._layers):
            raise UserError(
                f"genome has {len(genome)} genes but the model has {len(self._layers)} quantized layers"
            )
        return [
            self._config(name, gene) for name, gene in zip(self.table.layers, genome)
        ]

    def _config(self, layer: str, gene: Gene) -> BitConfig | None:
        if gene is None:
            return None
        if isinstance(gene, (tuple, list)) and tuple(gene) in self.table.bit_configs:
            return tuple(gene)
        if isinstance(gene, Integral) and int(gene) in self._by_weight_bits:
            return self._by_weight_bits[int(gene)]
        allowed = sorted(self._by_weight_bits) or self.table.bit_configs
        raise UserError(f"layer {layer}: gene {gene!r} is not one of {allowed}")

    def __call__(self, *args, **kwargs):
        return self.runnable(*args, **kwargs)

    def remove(self) -> None:
        """Restore FP32 weights and take the hooks off the model."""
        self.apply(None)
        for handle in self._handles:
            handle.remove()
        for part in self._compiled_parts:
            del part.forward  # the class's own again
        setattr(self.model, WRAPPED, False)


def _unique_weight_widths(configs: Sequence[BitConfig]) -> dict[int, BitConfig]:
    """Weight width -> config, for widths that name exactly one config of the table."""
    widths = [w for w, _ in configs]
    return {w: (w, a) for w, a in configs if widths.count(w) == 1}
