"""Stage 1: per-module calibration of every quantizable layer's input ranges.

The thesis calibrates one top-level child ("main module") at a time so that only
that module's statistics live in memory. We do the same: for each main module in
genome order, every calibration batch runs through the *whole FP32 model* (no
quantization is installed during calibration), so the module being calibrated
always sees FP32 inputs from upstream; hooks on its layers fold each input into
running statistics and drop the tensor.

The statistics are a running minimum and maximum (torch's min/max observers), per
channel or per tensor (``quant.activations.granularity``). The robust estimators
(``percentile``, ``mse``) also need the distribution inside that range: a second pass
over the same batches counts every input into a fixed-range histogram per channel (or
per tensor), which is all that is kept of it. torch's ``HistogramObserver`` is per
tensor only and searches its clip for 8-bit integers only, so the histogram is ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby

import torch
from torch import Tensor, nn
from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver

from evoquant.config import QuantConfig
from evoquant.errors import UserError
from evoquant.quant.fakequant import compute_qparams, fake_quantize
from evoquant.quant.layers import Layer
from evoquant.quant.progress import CalibrationProgress
from evoquant.registry import RANGE_ESTIMATORS, UnknownName, lookup

HISTOGRAM_BINS = {True: 256, False: 2048}
"""Bins per channel (per-channel ranges) and per tensor: a per-channel histogram holds
one row per channel, so it gets fewer bins to bound the memory of a wide layer."""
CLIP_GRID = [round(1 - 0.01 * i, 2) for i in range(100)]
"""Fractions of the observed range the ``mse`` estimator tries, widest first, so that
a tie (FP16, where every clip gives the same error) keeps the whole range."""


@dataclass(frozen=True)
class RangeSettings:
    """How observed inputs become ranges: ``quant.activations`` resolved for its scheme."""

    per_channel: bool = False
    estimator: str = "minmax"
    percentile: float = 99.99

    @classmethod
    def of(cls, quant: QuantConfig) -> RangeSettings:
        activations = quant.activations
        return cls(
            quant.per_channel_activations,
            activations.estimator,
            activations.percentile,
        )


@dataclass
class InputRange:
    """Running range (and, for robust estimators, histogram) of one layer input.

    ``axis`` is the channel axis of the input, or None for one range over the whole
    tensor. ``bounds`` gives the range an activation quantizer of some width uses.
    """

    axis: int | None
    settings: RangeSettings = RangeSettings()
    observer: MinMaxObserver | PerChannelMinMaxObserver | None = None
    histogram: Tensor | None = None
    """``(channels, bins)`` counts over ``[min, max]`` of each channel (one row per tensor)."""
    _bounds: dict[tuple[int, str], tuple[Tensor, Tensor]] = field(
        default_factory=dict, repr=False
    )

    @property
    def min(self) -> Tensor:
        return self.observer.min_val

    @property
    def max(self) -> Tensor:
        return self.observer.max_val

    def update(self, x: Tensor) -> None:
        """Fold ``x`` into the running minimum and maximum."""
        if self.observer is None:
            observer = (
                MinMaxObserver()
                if self.axis is None
                else PerChannelMinMaxObserver(ch_axis=self.axis)
            )
            self.observer = observer.to(x.device)
        self.observer(x.detach().float())

    def _rows(self, x: Tensor) -> Tensor:
        """``x`` as ``(channels, values)``: one row per channel, or one row in all."""
        x = x.detach().float()
        if self.axis is None:
            return x.reshape(1, -1)
        return x.movedim(self.axis, 0).reshape(x.shape[self.axis], -1)

    def _bins(self) -> tuple[Tensor, Tensor]:
        """Lower edge and width of the first bin of each row."""
        low = self.min.reshape(-1, 1)
        width = (self.max.reshape(-1, 1) - low) / HISTOGRAM_BINS[self.axis is not None]
        return low, torch.where(width > 0, width, torch.ones_like(width))

    def count(self, x: Tensor) -> None:
        """Add ``x`` to the histogram over the range the first pass found."""
        rows = self._rows(x)
        bins = HISTOGRAM_BINS[self.axis is not None]
        low, width = self._bins()
        index = ((rows - low) / width).floor_().clamp_(0, bins - 1).long()
        index += torch.arange(len(rows), device=rows.device).unsqueeze(1) * bins
        counts = torch.bincount(index.flatten(), minlength=len(rows) * bins)
        counts = counts.view(len(rows), bins)
        self.histogram = counts if self.histogram is None else self.histogram + counts

    def bounds(self, bits: int, scheme: str) -> tuple[Tensor, Tensor]:
        """The range a ``bits``-wide activation quantizer of ``scheme`` uses: what the
        estimator registered as ``settings.estimator`` makes of the observations."""
        return estimator_of(self.settings)(self, bits, scheme)

    def cached(
        self, key: tuple[int, str], compute: Callable[[], tuple[Tensor, Tensor]]
    ) -> tuple[Tensor, Tensor]:
        """``compute()`` once per ``key``, from the histogram pass."""
        if key not in self._bounds:
            if self.histogram is None:
                raise ValueError("the robust estimators need the histogram pass")
            self._bounds[key] = compute()
        return self._bounds[key]

    def _percentile_bounds(self) -> tuple[Tensor, Tensor]:
        """The ``100 - p`` and ``p`` percentiles, at the outer edges of their bins."""
        cumulative = self.histogram.cumsum(1).double()
        total = cumulative[:, -1:]
        share = self.settings.percentile / 100
        low, width = self._bins()
        upper = (cumulative < share * total).sum(1, keepdim=True) + 1
        lower = (cumulative <= (1 - share) * total).sum(1, keepdim=True)
        shape = self.min.shape
        return (
            torch.maximum(low + lower * width, self.min.reshape(-1, 1)).reshape(shape),
            torch.minimum(low + upper * width, self.max.reshape(-1, 1)).reshape(shape),
        )

    def _mse_bounds(self, bits: int, scheme: str) -> tuple[Tensor, Tensor]:
        """The fraction of ``[min, max]`` whose quantizer least distorts the histogram.

        Each bin stands for its count of values at its centre; the candidates shrink
        the range towards zero, as alpha does.
        """
        low, width = self._bins()
        bins = HISTOGRAM_BINS[self.axis is not None]
        centres = low + (torch.arange(bins, device=low.device) + 0.5) * width
        lows, highs = self.min.reshape(-1), self.max.reshape(-1)
        axis = 0 if self.axis is not None else None
        errors = []
        for fraction in CLIP_GRID:
            qp = compute_qparams(lows * fraction, highs * fraction, bits, scheme, axis)
            error = (fake_quantize(centres, qp) - centres).square_()
            errors.append((error * self.histogram).sum(1))
        best = torch.tensor(CLIP_GRID, device=low.device)[torch.stack(errors).argmin(0)]
        return self.min * best.reshape(self.min.shape), self.max * best.reshape(
            self.max.shape
        )


RangeEstimator = Callable[[InputRange, int, str], tuple[Tensor, Tensor]]
"""``estimator(observed, bits, scheme) -> (low, high)``, registered in
``RANGE_ESTIMATORS`` under the name ``quant.activations.estimator`` gives. One with
``needs_histogram = False`` is spared calibration's second (histogram) pass."""


@RANGE_ESTIMATORS.register_module("minmax")
def minmax_range(observed: InputRange, bits: int, scheme: str) -> tuple[Tensor, Tensor]:
    """The observed extremes."""
    return observed.min, observed.max


minmax_range.needs_histogram = False


@RANGE_ESTIMATORS.register_module("percentile")
def percentile_range(
    observed: InputRange, bits: int, scheme: str
) -> tuple[Tensor, Tensor]:
    """The ``100 - percentile`` and ``percentile`` percentiles of the histogram."""
    return observed.cached((0, ""), observed._percentile_bounds)


@RANGE_ESTIMATORS.register_module("mse")
def mse_range(observed: InputRange, bits: int, scheme: str) -> tuple[Tensor, Tensor]:
    """The clip of least quantization error on the histogram, per width and scheme."""
    return observed.cached((bits, scheme), lambda: observed._mse_bounds(bits, scheme))


def estimator_of(settings: RangeSettings) -> RangeEstimator:
    try:
        return lookup(RANGE_ESTIMATORS, settings.estimator)
    except UnknownName as error:
        raise UserError(f"quant.activations.estimator: {error}") from None


Hook = Callable[[Layer, nn.Module, tuple[Tensor, ...], Tensor], None]


def main_module_groups(layers: Sequence[Layer]) -> Iterator[tuple[str, list[Layer]]]:
    """Layers grouped by their top-level child, in genome order."""
    for name, group in groupby(layers, key=lambda layer: layer.main_module):
        yield name, list(group)


@contextmanager
def layer_hooks(
    model: nn.Module, layers: Sequence[Layer], hook: Hook
) -> Iterator[None]:
    """Call ``hook(layer, module, inputs, output)`` after each forward of the given layers."""
    modules = dict(model.named_modules())
    handles = [
        modules[layer.name].register_forward_hook(
            lambda module, inputs, output, layer=layer: hook(
                layer, module, inputs, output
            )
        )
        for layer in layers
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_batches(model: nn.Module, run: Callable, batches: Sequence) -> None:
    with torch.no_grad():
        for batch in batches:
            run(model, batch)


def needs_histogram(settings: RangeSettings) -> bool:
    """Whether the estimator needs the second (histogram) pass."""
    return getattr(estimator_of(settings), "needs_histogram", True)


def stage1_work(layers: Sequence[Layer], batches: int, settings: RangeSettings) -> int:
    """Layer forwards ``calibrate_ranges`` observes (what its progress counts)."""
    return len(layers) * batches * (2 if needs_histogram(settings) else 1)


def calibrate_ranges(
    model: nn.Module,
    layers: Sequence[Layer],
    run: Callable,
    batches: Sequence,
    settings: RangeSettings = RangeSettings(),
    progress: CalibrationProgress | None = None,
) -> dict[str, list[InputRange]]:
    """Per layer, one running range for each tensor input (two for a MatMul)."""
    ranges: dict[str, list[InputRange]] = {}
    progress = progress or CalibrationProgress(0, stream=None)

    def observe(
        layer: Layer, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor
    ) -> None:
        axis = layer.input_axis if settings.per_channel else None
        observers = ranges.setdefault(
            layer.name, [InputRange(axis, settings) for _ in inputs]
        )
        for observer, x in zip(observers, inputs):
            observer.update(x)
        progress.step(1, f"ranges of {layer.name}")

    def count(
        layer: Layer, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor
    ) -> None:
        for observer, x in zip(ranges[layer.name], inputs):
            observer.count(x)
        progress.step(1, f"histograms of {layer.name}")

    for _, group in main_module_groups(layers):
        with layer_hooks(model, group, observe):
            run_batches(model, run, batches)
        if needs_histogram(settings):
            reached = [layer for layer in group if layer.name in ranges]
            with layer_hooks(model, reached, count):
                run_batches(model, run, batches)
    missing = [layer.name for layer in layers if layer.name not in ranges]
    if missing:
        raise UserError(
            f"calibration never ran layer(s) {', '.join(missing[:3])}: add them to layers.exclude"
        )
    return ranges
