"""QuantTable: stages 1 + 2 computed once for every (layer, bit config), then only selected.

Saved in the run dir as ``quant_table.safetensors`` (tensors) plus
``quant_table.json`` (everything else), no pickle. ``key`` hashes the model
weights, the calibration data and the quantization settings, so a table built
for another model or other settings is detected as stale; the JSON holds the
SHA-256 of the tensor file and of itself, so a damaged table is refused, not used.

Weights are held as integer codes and their quantizers (``evoquant/quant/codes.py``),
not as fake-quantized float copies; ``LayerEntry.weight`` decodes them, which the
quantized model does once per config when it is built. ``FORMAT`` numbers that
layout: a table of another format (format 1 held float copies) is rebuilt, or
refused where its results must be kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import Tensor, nn

from evoquant.atomic import write_bytes_atomic
from evoquant.config import QuantConfig
from evoquant.errors import UserError
from evoquant.quant.alpha import BitConfig, search_alphas, stage2_work
from evoquant.quant.blockwise import BlockQParams
from evoquant.quant.calibrate import RangeSettings, calibrate_ranges, stage1_work
from evoquant.quant.codes import WeightCodes, decode, encode
from evoquant.quant.fakequant import QParams
from evoquant.quant.layers import Layer
from evoquant.quant.progress import CalibrationProgress
from evoquant.quant.qparams import WeightQParams, input_qparams, weight_qparams
from evoquant.rundir import TABLE_META_FILE as META_FILE
from evoquant.rundir import TABLE_TENSORS_FILE as TENSORS_FILE

log = logging.getLogger(__name__)


FORMAT = 2
"""Version of the files' layout: 2 = weight codes and quantizers (1 = float weights)."""


class OutdatedTable(UserError):
    """A table saved in another format than ``FORMAT``."""


@dataclass(frozen=True)
class LayerEntry:
    """One layer at one bit config: its weight codes and its quantizers."""

    codes: WeightCodes | None
    weight_qparams: WeightQParams | None
    input_qparams: tuple[QParams, ...]
    alpha_w: float
    alpha_a: float

    @property
    def weight(self) -> Tensor | None:
        """The fake-quantized FP32 weight (decoded on each call: keep it)."""
        if self.codes is None:
            return None
        return decode(self.codes, self.weight_qparams)


@dataclass
class QuantTable:
    key: str
    scheme: str
    layers: list[str]
    bit_configs: list[BitConfig]
    entries: dict[tuple[str, int, int], LayerEntry]
    alpha_histograms: dict[str, list[int]] = field(default_factory=dict)

    def entry(self, layer: str, config: BitConfig) -> LayerEntry:
        return self.entries[(layer, *config)]

    def save(self, directory: str | Path) -> None:
        """Write both files atomically, tensors first: the JSON vouches for them."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, Tensor] = {}
        entries_meta = []
        for (layer, w, a), entry in self.entries.items():
            prefix = f"{layer}/W{w}A{a}"
            if entry.codes is not None:
                tensors[f"{prefix}/weight_codes"] = entry.codes.packed
            quantizers = {"weight": entry.weight_qparams} | {
                f"input{i}": qp for i, qp in enumerate(entry.input_qparams)
            }
            for role, qp in quantizers.items():
                if qp is not None:
                    tensors[f"{prefix}/{role}_scale"] = qp.scale
                    tensors[f"{prefix}/{role}_zero_point"] = qp.zero_point
            entries_meta.append(
                {
                    "layer": layer,
                    "config": [w, a],
                    "alpha_w": entry.alpha_w,
                    "alpha_a": entry.alpha_a,
                    "weight_shape": None
                    if entry.codes is None
                    else list(entry.codes.shape),
                    "quantizers": {
                        role: _qparams_meta(qp)
                        for role, qp in quantizers.items()
                        if qp is not None
                    },
                }
            )
        data = save(_contiguous(tensors))
        write_bytes_atomic(directory / TENSORS_FILE, data)
        meta = {
            "format": FORMAT,
            "tensors_sha256": _sha256(data),
            "key": self.key,
            "scheme": self.scheme,
            "layers": self.layers,
            "bit_configs": [list(c) for c in self.bit_configs],
            "entries": entries_meta,
            "alpha_histograms": self.alpha_histograms,
        }
        meta["sha256"] = _sha256(_canonical(meta))
        write_bytes_atomic(directory / META_FILE, json.dumps(meta, indent=1).encode())

    @classmethod
    def load(cls, directory: str | Path) -> QuantTable:
        directory = Path(directory)
        try:
            return cls._from_files(directory)
        except OutdatedTable:
            raise
        except (OSError, ValueError, KeyError, TypeError, SafetensorError) as error:
            raise UserError(
                f"the quantization table in {directory} is unreadable ({error}): "
                f"delete {TENSORS_FILE} and {META_FILE} to calibrate anew"
            ) from None

    @classmethod
    def _from_files(cls, directory: Path) -> QuantTable:
        meta = json.loads((directory / META_FILE).read_bytes())
        if not isinstance(meta, dict) or meta.pop("sha256", None) != _sha256(
            _canonical(meta)
        ):
            raise ValueError(f"{META_FILE} fails its checksum")
        if meta.get("format", 1) != FORMAT:
            raise OutdatedTable(
                f"the quantization table in {directory} has format "
                f"{meta.get('format', 1)}, this evoquant reads format {FORMAT} "
                "(weight codes): a new calibrate or search rebuilds it"
            )
        data = (directory / TENSORS_FILE).read_bytes()
        if _sha256(data) != meta["tensors_sha256"]:
            raise ValueError(f"{TENSORS_FILE} fails its checksum")
        tensors = load(data)
        entries = {}
        for item in meta["entries"]:
            w, a = item["config"]
            prefix = f"{item['layer']}/W{w}A{a}"
            quantizers = {
                role: _qparams_from(tensors, f"{prefix}/{role}", qmeta)
                for role, qmeta in item["quantizers"].items()
            }
            inputs = tuple(
                quantizers[r] for r in sorted(quantizers) if r.startswith("input")
            )
            shape = item["weight_shape"]
            entries[(item["layer"], w, a)] = LayerEntry(
                None
                if shape is None
                else WeightCodes(tensors[f"{prefix}/weight_codes"], tuple(shape)),
                quantizers.get("weight"),
                inputs,
                item["alpha_w"],
                item["alpha_a"],
            )
        return cls(
            meta["key"],
            meta["scheme"],
            meta["layers"],
            [tuple(c) for c in meta["bit_configs"]],
            entries,
            meta["alpha_histograms"],
        )


def _qparams_meta(qp: WeightQParams) -> dict:
    if isinstance(qp, BlockQParams):
        return {
            "qmin": qp.qmin,
            "qmax": qp.qmax,
            "block_size": qp.block_size,
            "fp16_output": qp.fp16_output,
        }
    return {"qmin": qp.qmin, "qmax": qp.qmax, "axis": qp.axis, "fp16": qp.fp16}


def _qparams_from(tensors: dict[str, Tensor], prefix: str, meta: dict) -> WeightQParams:
    scale, zero_point = tensors[f"{prefix}_scale"], tensors[f"{prefix}_zero_point"]
    if "block_size" in meta:
        return BlockQParams(
            scale,
            zero_point,
            meta["qmin"],
            meta["qmax"],
            meta["block_size"],
            meta["fp16_output"],
        )
    return QParams(
        scale, zero_point, meta["qmin"], meta["qmax"], meta["axis"], meta["fp16"]
    )


def _contiguous(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {name: t.detach().contiguous().cpu() for name, t in tensors.items()}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(meta: dict) -> bytes:
    return json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()


def table_key(
    model: nn.Module, layers: Sequence[Layer], batches: Sequence, quant: QuantConfig
) -> str:
    """Hash of what the table depends on: weights, calibration data, settings, layer list."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for tensor in tensors_in(batches):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    settings = {
        "quant": quant.model_dump(mode="json"),
        "layers": [layer.name for layer in layers],
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def tensors_in(value: object) -> list[Tensor]:
    """Every tensor in a batch (tensor, list, tuple or dict, nested; dicts in key order)."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for key in sorted(value) for t in tensors_in(value[key])]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tensors_in(item)]
    return []


def build_quant_table(
    model: nn.Module,
    layers: Sequence[Layer],
    run: Callable,
    batches: Sequence,
    quant: QuantConfig,
    progress: TextIO | None = None,
) -> QuantTable:
    """Stage 1 then stage 2, then the weight codes of every (layer, config).

    ``progress``: where the build reports its stage, layer and ETA (None: nowhere).
    """
    model.eval()
    settings, grid = RangeSettings.of(quant), quant.alpha.grid()
    work = stage1_work(layers, len(batches), settings) + stage2_work(
        layers, len(batches), quant.bit_configs, grid
    )
    reporter = CalibrationProgress(work, stream=progress)
    ranges = calibrate_ranges(model, layers, run, batches, settings, reporter)
    alphas = search_alphas(
        model,
        layers,
        ranges,
        run,
        batches,
        quant.bit_configs,
        quant.scheme,
        grid,
        quant.weights,
        reporter,
    )
    modules = dict(model.named_modules())
    entries = {}
    for layer in layers:
        module = modules[layer.name]
        for config in quant.bit_configs:
            w_bits, a_bits = config
            alpha_w = alphas.alpha_w(layer.name, w_bits)
            alpha_a = alphas.alpha_a(layer.name, config)
            codes = weight_q = None
            if layer.num_weights:
                weight_q = weight_qparams(
                    module.weight, w_bits, quant.scheme, alpha_w, quant.weights.block
                )
                codes = encode(module.weight, weight_q)
            inputs = tuple(
                input_qparams(observed, a_bits, quant.scheme, alpha_a)
                for observed in ranges[layer.name]
            )
            entries[(layer.name, *config)] = LayerEntry(
                codes, weight_q, inputs, _mean_alpha(alpha_w), alpha_a
            )
    reporter.finish()
    histograms = {  # a per-block count summed over the blocks
        f"{layer}/W{w}": counts.reshape(len(grid), -1).sum(1).tolist()
        for (layer, w), counts in alphas.weight_counts.items()
    } | {
        f"{layer}/W{w}A{a}/input": c.tolist()
        for (layer, w, a), c in alphas.input_counts.items()
    }
    return QuantTable(
        table_key(model, layers, batches, quant),
        quant.scheme,
        [layer.name for layer in layers],
        list(quant.bit_configs),
        entries,
        histograms,
    )


def _mean_alpha(alpha: float | Tensor) -> float:
    """A per-block alpha as its mean (the JSON's summary; the scales hold each)."""
    return float(alpha.mean()) if isinstance(alpha, Tensor) else alpha


def load_or_build(
    directory: str | Path,
    model: nn.Module,
    layers: Sequence[Layer],
    run: Callable,
    batches: Sequence,
    quant: QuantConfig,
    rebuild_stale: bool = True,
    progress: TextIO | None = None,
) -> tuple[QuantTable, bool]:
    """The table saved in ``directory`` if it is still valid, else a new one (saved there).

    Returns the table and whether it was rebuilt. With ``rebuild_stale`` False a
    stale table is an error instead: a resumed run's archive was scored with it.
    """
    directory = Path(directory)
    if (directory / META_FILE).exists():
        try:
            table = QuantTable.load(directory)
        except OutdatedTable as outdated:
            if not rebuild_stale:
                raise UserError(
                    f"{outdated}, but not for a resumed search, whose archive was "
                    "scored with the old table: search in a new run directory"
                ) from None
            log.warning("%s: rebuilding it", outdated)
        else:
            if table.key == table_key(model, layers, batches, quant):
                return table, False
        if not rebuild_stale:
            raise UserError(
                f"the model, calibration data or quantization settings changed since "
                f"{directory} was calibrated: its archived results no longer apply"
            )
    table = build_quant_table(model, layers, run, batches, quant, progress)
    table.save(directory)
    return table, True
