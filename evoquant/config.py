"""Run configuration: YAML validated against a schema, unknown keys rejected.

Every mistake a config can hold is found here, while it loads, so that a wrong
setting is one line of error before anything is written, not a traceback (or an
exhausted memory) some way into a run. Numbers are bounded where a typo would
otherwise ask for absurd amounts of memory or time.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializationInfo,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from evoquant.errors import UserError
from evoquant.quant.fakequant import BIT_WIDTHS
from evoquant.registry import (
    CROSSOVERS,
    GENE_POLICIES,
    MUTATIONS,
    RANGE_ESTIMATORS,
    TARGETS,
    Registry,
    UnknownName,
    check,
    lookup,
)
from evoquant.targets import INT4_BLOCK_SIZES, W4A16, W8A8, W16A16

SEED_LIMIT = 2**32
"""Seeds are in ``[0, SEED_LIMIT)``: what numpy's and pymoo's generators take."""
MAX_POP_SIZE = 100_000
MAX_GENERATIONS = 100_000
MAX_ALPHA_POINTS = 1001
"""The most points the stage-2 alpha grid may have: each is one more scale to try per layer."""
MAX_WORKERS = 10_000
MAX_THREADS_PER_WORKER = 1024
MAX_RETRIES = 100
MAX_GPUS_PER_WORKER = 1024
RAY_RESOURCE_PRECISION = 1e-4
"""The finest fraction of a GPU Ray can reserve."""

COST_EXCLUDED = {
    "error": "the error objective",
    "f_cos": "an error metric",
    "compression": "larger when cheaper; minimise f_bits or relative_cost instead",
}
"""Metrics that cannot be the cost objective, which the search minimises."""


def _not_bool(value: Any) -> Any:
    """Refuse ``true``/``false`` where a number is meant (pydantic would read 1 or 0)."""
    if isinstance(value, bool):
        raise PydanticCustomError(
            "number_type", "Input should be a number, not a boolean"
        )
    return value


Integer = Annotated[int, BeforeValidator(_not_bool)]
"""An int, from an int or an integral float (``1.0e+3``); never a bool or ``2.5``."""
Number = Annotated[float, BeforeValidator(_not_bool)]
"""A finite float (sections forbid inf and nan), never a bool."""


def _plain_data(value: Any, where: str = "") -> None:
    """Refuse what YAML can hold but run.json cannot store back as it was read."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _plain_data(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                # pydantic reports a ValueError as a validation error, a TypeError not
                raise ValueError(f"{where or 'args'}: key {key!r} is not text")  # noqa: TRY004
            _plain_data(item, f"{where}.{key}" if where else key)
        return
    kind = (
        "a date"
        if isinstance(value, (date, datetime))
        else f"a {type(value).__name__} value"
    )
    raise ValueError(
        f"{where or 'args'} is {kind}: problem arguments must be text, numbers, "
        "booleans, null, lists or mappings"
    )


SCHEME_ALIASES = {"affine": "thesis", "symmetric": "tensorrt"}
"""Clear names of the two ``quant.scheme`` values, accepted beside the stored spellings:
``affine`` (asymmetric, zero-points; the thesis's) and ``symmetric`` (zero-point 0,
what TensorRT runs). A config and run.json keep ``thesis``/``tensorrt``, so digests of
configs written either way are the same."""


def _in_range(field: str, value: int, low: int, high: int) -> int:
    """``value`` when ``low <= value <= high``, else the ValueError pydantic reports."""
    if value < low:
        raise ValueError(f"{field} must be at least {low}")
    if value > high:
        raise ValueError(f"{field} must be at most {high}, not {value}")
    return value


def check_alphabet(alphabet: Iterable[int]) -> list[int]:
    """The widths a gene may take: at least one, each of ``BIT_WIDTHS`` (a ValueError
    names the first that is not); the config and a SearchSpace built in code alike."""
    alphabet = list(alphabet)
    if not alphabet:
        raise ValueError("alphabet is empty")
    for bits in alphabet:
        if bits not in BIT_WIDTHS:
            raise ValueError(f"{bits} bits is not one of {BIT_WIDTHS}")
    return alphabet


def scheme_name(value: Any) -> Any:
    """The stored spelling of a ``quant.scheme`` (an alias normalised)."""
    return SCHEME_ALIASES.get(value, value) if isinstance(value, str) else value


def registered(registry: Registry) -> Any:
    """A ``str`` field that must name a part ``registry`` holds: the config check lists
    the registered names in its one-line error. A part with a ``name`` attribute is
    stored under that spelling (an alias normalised, so digests do not change)."""

    def validate(value: Any) -> Any:
        if value is None:
            return value
        try:
            part = lookup(registry, check(registry, value))
        except UnknownName as error:
            raise PydanticCustomError(
                "unknown_name", "{message}", {"message": str(error)}
            ) from None
        canonical = getattr(part, "name", None)
        return canonical if isinstance(canonical, str) and canonical else value

    return BeforeValidator(validate)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ProblemConfig(Section):
    """``name`` is a registered problem or an import path ``package.module:factory``.

    ``args`` are plain data (what run.json stores back unchanged); their names and
    types are checked against the factory's signature when the problem is built
    (``problems.registry``).
    """

    name: str
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("args")
    @classmethod
    def _check_args(cls, args: dict[str, Any]) -> dict[str, Any]:
        _plain_data(args)
        return args


class AlphaConfig(Section):
    """The stage-2 grid of scale factors; ``enabled: false`` is the thesis's "Q" variant.

    The grid ``start, start + step, ..., stop`` has at most ``MAX_ALPHA_POINTS`` (1001)
    points, enabled or not.
    """

    enabled: bool = True
    start: Number = 0.80
    stop: Number = 1.20
    step: Number = 0.02

    @model_validator(mode="after")
    def _check_grid(self) -> AlphaConfig:
        if not (0 < self.start <= self.stop) or self.step <= 0:
            raise ValueError("alpha grid needs 0 < start <= stop and step > 0")
        intervals = (self.stop - self.start) / self.step
        count = round(intervals) + 1 if math.isfinite(intervals) else math.inf
        if count > MAX_ALPHA_POINTS:
            raise ValueError(
                f"alpha grid from {self.start:g} to {self.stop:g} in steps of "
                f"{self.step:g} has {count} points; at most {MAX_ALPHA_POINTS} are allowed"
            )
        return self

    def grid(self) -> list[float]:
        if not self.enabled:
            return [1.0]
        count = round((self.stop - self.start) / self.step) + 1
        return [round(self.start + i * self.step, 10) for i in range(count)]


class ActivationConfig(Section):
    """How stage 1 turns a layer's observed inputs into its activation range.

    ``granularity``: one range per tensor (default) or, under the ``thesis`` scheme
    only, one per channel (the thesis's own calibration; ``tensorrt`` runs nothing but
    per-tensor activations). ``estimator``: ``minmax`` (the observed extremes),
    ``percentile`` (the ``100 - percentile`` and ``percentile`` percentiles of a running
    histogram, which clips rare outliers) or ``mse`` (the clip of least quantization
    error on that histogram, per activation width). ``percentile`` is in (50, 100].
    Why per tensor by default: ``bench/heldout.py`` (docs/method.md).
    """

    granularity: Literal["per_channel", "per_tensor"] = "per_tensor"
    estimator: Annotated[str, registered(RANGE_ESTIMATORS)] = "minmax"
    percentile: Number = 99.99

    @field_validator("percentile")
    @classmethod
    def _check_percentile(cls, value: float) -> float:
        if not 50 < value <= 100:
            raise ValueError(f"percentile must be in (50, 100], not {value:g}")
        return value


MAX_BLOCK_SIZE = 1 << 16
"""The widest weight block: wider than any layer's rows is per channel anyway."""


class WeightConfig(Section):
    """How weights of 4 bits or fewer are quantized (INT8 and wider stay per channel).

    ``granularity``: one scale per output channel (``per_channel``) or per block of
    ``block_size`` consecutive values along each row's reduction dimension (``block``:
    what TensorRT's weight-only INT4 runs; a layer whose rows ``block_size`` does not
    divide uses 64 if that divides them, else a shorter last block). The default under
    ``target: tensorrt`` is ``block`` with ``block_size`` 128, else ``per_channel``.
    """

    granularity: Literal["per_channel", "block"] = "per_channel"
    block_size: Integer = INT4_BLOCK_SIZES[0]
    block_alpha: Literal["per_block", "per_layer"] = "per_block"
    """Stage 2 under ``block``: one alpha per block (each minimising its block's share of
    the layer's output error) or one for the whole layer (``bench/int4_blockwise.py``)."""

    @field_validator("block_size")
    @classmethod
    def _check_block_size(cls, value: int) -> int:
        if not 1 <= value <= MAX_BLOCK_SIZE:
            raise ValueError(
                f"block_size must be in [1, {MAX_BLOCK_SIZE}], not {value}"
            )
        return value

    @property
    def block(self) -> int | None:
        """The block size, None when weights are per channel."""
        return self.block_size if self.granularity == "block" else None


LEGACY_WEIGHTS = WeightConfig()
"""Weights before ``quant.weights`` existed: per channel. Left out of a dump, so older
runs and tables keep their digests and keys."""
TENSORRT_WEIGHTS = {"granularity": "block"}
"""What ``target: tensorrt`` deploys for INT4 weights, and so searches by default."""

LEGACY_ACTIVATIONS = {
    "thesis": ActivationConfig(granularity="per_channel"),
    "tensorrt": ActivationConfig(),
}
"""What each scheme did before ``quant.activations`` existed (evoquant 0.2): a config
or run file without the key meant this, and a config that asks for it keeps the digests
(config, scoring, table key) it had then."""
COMPLETE = {"complete": True}
"""Serialisation context that keeps ``quant.activations`` even where it is legacy."""


class QuantConfig(Section):
    """``activations`` equal to the scheme's legacy ones is left out of a dump (unless
    the context says ``complete``), so runs and tables made before the key existed keep
    their digests; a stored config without it is read as legacy (``parse_config``)."""

    scheme: Annotated[Literal["thesis", "tensorrt"], BeforeValidator(scheme_name)] = (
        "thesis"
    )
    """``affine`` (alias ``thesis``) or ``symmetric`` (alias ``tensorrt``): ``SCHEME_ALIASES``."""
    bit_configs: list[tuple[Integer, Integer]] = [(2, 8), (4, 8), (8, 8), (16, 16)]
    alpha: AlphaConfig = AlphaConfig()
    activations: ActivationConfig = ActivationConfig()
    weights: WeightConfig = WeightConfig()

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any, info: SerializationInfo) -> dict[str, Any]:
        data = handler(self)
        complete = (info.context or {}).get("complete", False)
        if not complete and self.activations == LEGACY_ACTIVATIONS[self.scheme]:
            data.pop("activations", None)
        if not complete and self.weights == LEGACY_WEIGHTS:
            data.pop("weights", None)
        return data

    @model_validator(mode="after")
    def _check_granularity(self) -> QuantConfig:
        if self.scheme == "tensorrt" and self.activations.granularity == "per_channel":
            raise ValueError(
                "the tensorrt scheme quantizes activations per tensor (all TensorRT "
                "runs): activations.granularity per_channel needs scheme thesis"
            )
        return self

    @property
    def per_channel_activations(self) -> bool:
        """One input range per channel: asked for, under the scheme that can run it."""
        return self.scheme == "thesis" and self.activations.granularity == "per_channel"

    @field_validator("bit_configs")
    @classmethod
    def _check_bits(cls, configs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        if not configs:
            raise ValueError("bit_configs is empty: list at least one [weights, acts]")
        for w, a in configs:
            if w not in BIT_WIDTHS or a not in BIT_WIDTHS:
                raise ValueError(
                    f"bit config W{w}A{a}: bit-widths must be in {BIT_WIDTHS}"
                )
        return configs


class LayersConfig(Section):
    """Glob patterns on dotted layer names; ``fixed`` pins layers to one bit-width.

    A pinned width must be one of ``search.alphabet``. ``attention: auto`` makes the
    attention products the model computes (``scaled_dot_product_attention``, matmuls
    between activations) layers of their own (``evoquant.quant.attention``); ``off``
    leaves them FP32. ``dead: exclude`` leaves out layers whose output never reaches
    the problem's outputs (they cost bits that change nothing); ``keep`` searches them.
    """

    include: list[str] = []
    exclude: list[str] = []
    fixed: dict[str, Integer] = {}
    attention: Literal["auto", "off"] = "auto"
    dead: Literal["exclude", "keep"] = "exclude"


LAYERS_DIGEST_DEFAULTS = {"attention": "auto", "dead": "exclude"}
"""``layers`` keys left out of the digest at these values, so configs written before
they existed keep their run dirs."""


class SeedingConfig(Section):
    """Generation 0 seeded from per-layer sensitivity (docs/seeding.md).

    Before generation 0 the search measures every probe (the base genome, all layers at
    ``base_bits``, and each layer moved alone to each other width); ``share`` of
    generation 0 is then the uniform configurations and genomes spread along the front
    of the additive error model, the rest random.
    """

    enabled: bool = False
    share: Number = 0.5
    base_bits: Integer = 8

    @field_validator("share")
    @classmethod
    def _check_share(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError(f"share must be in (0, 1], not {value:g}")
        return value

    @field_validator("base_bits")
    @classmethod
    def _check_base(cls, value: int) -> int:
        if value not in BIT_WIDTHS:
            raise ValueError(f"base_bits: {value} bits is not one of {BIT_WIDTHS}")
        return value


MAX_SCREENING_FACTOR = 1000


class ScreeningConfig(Section):
    """Surrogate-screened offspring (docs/seeding.md): ``factor`` times the offspring
    are bred, a model fitted on the archive predicts their error, and only as many as
    usual are evaluated: the most promising, plus an ``exploration`` share drawn at
    random from the rest. Needs the sensitivity probes, measured first as for seeding.
    """

    enabled: bool = False
    factor: Integer = 10
    exploration: Number = 0.2

    @field_validator("factor")
    @classmethod
    def _check_factor(cls, value: int) -> int:
        if not 1 <= value <= MAX_SCREENING_FACTOR:
            raise ValueError(
                f"factor must be in 1..{MAX_SCREENING_FACTOR}, not {value}"
            )
        return value

    @field_validator("exploration")
    @classmethod
    def _check_exploration(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError(f"exploration must be in [0, 1], not {value:g}")
        return value


class SearchConfig(Section):
    """NSGA-II's settings.

    ``pop_size`` is 2 to ``MAX_POP_SIZE`` (100000) and ``generations`` 1 to
    ``MAX_GENERATIONS`` (100000): a typo must not ask for all the memory there is.
    ``mutation_prob`` (per gene; unset: 1 / genome length) is in (0, 1],
    ``crossover_prob`` in [0, 1]. ``alphabet`` lists the weight bit-widths a gene may
    take. ``objectives`` are exactly two, both minimised: a cost first (``f_bits``,
    ``relative_cost``, ``avg_weight_bits``, ``megabytes`` or a cost metric of the
    problem's own), then ``error``, the metric the top-level ``error`` key names; the
    fronts, plots and hypervolume are drawn in these two dimensions.
    ``offspring`` is how many new genomes each generation after the first asks for:
    unset, ``pop_size`` (the thesis's loop); ``workers``, the fewest whole waves of the
    evaluator's workers that hold ``pop_size`` (resolved once, when the run starts, and
    stored as a number).
    """

    pop_size: Integer = 100
    generations: Integer = 50
    mutation: Annotated[str, registered(MUTATIONS)] = "adjacent"
    mutation_prob: Number | None = None
    crossover: Annotated[str, registered(CROSSOVERS)] = "midpoint"
    crossover_prob: Number = 0.9
    policy: Annotated[str, registered(GENE_POLICIES)] = "thesis"
    """``weight_gene`` (stored as ``thesis``) or ``weight_and_activation_genes``
    (stored as ``two_genes``), or a policy of the user's own."""
    alphabet: list[Integer] = list(BIT_WIDTHS)
    objectives: list[str] = ["f_bits", "error"]
    offspring: Integer | Literal["workers"] | None = None
    seeding: SeedingConfig = SeedingConfig()
    screening: ScreeningConfig = ScreeningConfig()

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any, info: SerializationInfo) -> dict[str, Any]:
        """Seeding and screening left at their defaults (off) are left out of a dump,
        so runs made before they existed keep their digests."""
        data = handler(self)
        complete = (info.context or {}).get("complete", False)
        for key in ("seeding", "screening"):
            if not complete and getattr(self, key) == type(getattr(self, key))():
                data.pop(key, None)
        return data

    @field_validator("pop_size")
    @classmethod
    def _check_pop(cls, value: int) -> int:
        return _in_range("pop_size", value, 2, MAX_POP_SIZE)

    @field_validator("generations")
    @classmethod
    def _check_generations(cls, value: int) -> int:
        return _in_range("generations", value, 1, MAX_GENERATIONS)

    @field_validator("offspring")
    @classmethod
    def _check_offspring(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 1 <= value <= MAX_POP_SIZE:
            raise ValueError(
                f"offspring must be 1 to {MAX_POP_SIZE} or 'workers', not {value}"
            )
        return value

    @field_validator("mutation_prob")
    @classmethod
    def _check_mutation_prob(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value <= 1:
            raise ValueError(f"mutation_prob must be in (0, 1], not {value:g}")
        return value

    @field_validator("crossover_prob")
    @classmethod
    def _check_crossover_prob(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError(f"crossover_prob must be in [0, 1], not {value:g}")
        return value

    @field_validator("alphabet")
    @classmethod
    def _check_alphabet(cls, alphabet: list[int]) -> list[int]:
        return check_alphabet(alphabet)

    @field_validator("objectives")
    @classmethod
    def _check_objectives(cls, objectives: list[str]) -> list[str]:
        if len(objectives) != 2:
            raise ValueError(
                f"objectives must be two, a cost and error (fronts, plots and "
                f"hypervolume are two-dimensional), not {objectives}"
            )
        cost, error = objectives
        if error != "error":
            raise ValueError(
                f"the second objective must be error (the metric the top-level "
                f"error key names), not {error!r}"
            )
        if cost in COST_EXCLUDED:
            raise ValueError(
                f"the first objective must be a cost, and {cost!r} is "
                f"{COST_EXCLUDED[cost]}"
            )
        return objectives


TENSORRT_BIT_CONFIGS = [W4A16, W8A8, W16A16]
"""The bit configs TensorRT runs: INT4 weight-only with FP16 activations, INT8, FP16."""


class EvaluatorConfig(Section):
    """Where genomes are scored: in this process (``local``) or on Ray actors (``ray``).

    ``workers`` defaults to every CPU of the Ray cluster (``threads_per_worker`` each),
    or every GPU when the model runs on CUDA; ``gpus_per_worker`` defaults to 1 then and
    to 0 otherwise. ``ray_address`` absent starts a private local Ray instance; ``auto``
    joins the cluster started with ``ray start --head``. A genome whose evaluation
    raises is tried ``retries`` more times before it is recorded as failed. ``compile``
    runs each worker's model through ``torch.compile`` (a few seconds per worker, then
    fused quantize-dequantize kernels; docs/method.md, "Compiled evaluation").

    Bounds: ``workers`` 1 to ``MAX_WORKERS`` (10000), ``threads_per_worker`` 1 to
    ``MAX_THREADS_PER_WORKER`` (1024), ``retries`` 0 to ``MAX_RETRIES`` (100);
    ``gpus_per_worker`` is 0, a fraction of one GPU in steps Ray can reserve (0.0001),
    or a whole number of GPUs up to ``MAX_GPUS_PER_WORKER`` (1024), as Ray requires.
    """

    backend: Literal["local", "ray"] = "ray"
    workers: Integer | None = None
    ray_address: str | None = None
    gpus_per_worker: Number | None = None
    threads_per_worker: Integer = 1
    retries: Integer = 2
    ray_dashboard: bool = False
    compile: bool = False

    @field_validator("workers")
    @classmethod
    def _check_workers(cls, value: int | None) -> int | None:
        return None if value is None else _in_range("workers", value, 1, MAX_WORKERS)

    @field_validator("gpus_per_worker")
    @classmethod
    def _check_gpus(cls, value: float | None) -> float | None:
        if value is None:
            return value
        if not value >= 0:
            raise ValueError("gpus_per_worker must be 0 or more (fractions allowed)")
        if value > MAX_GPUS_PER_WORKER:
            raise ValueError(
                f"gpus_per_worker must be at most {MAX_GPUS_PER_WORKER}, not {value:g}"
            )
        if value > 1 and not value.is_integer():
            raise ValueError(
                f"gpus_per_worker {value:g}: Ray shares a GPU in fractions up to 1; "
                "more than one GPU must be a whole number"
            )
        if 0 < value < RAY_RESOURCE_PRECISION:
            raise ValueError(
                f"gpus_per_worker {value:g} is finer than Ray's "
                f"{RAY_RESOURCE_PRECISION:g} of a GPU"
            )
        return value

    @field_validator("threads_per_worker")
    @classmethod
    def _check_threads(cls, value: int) -> int:
        return _in_range("threads_per_worker", value, 1, MAX_THREADS_PER_WORKER)

    @field_validator("retries")
    @classmethod
    def _check_retries(cls, value: int) -> int:
        return _in_range("retries", value, 0, MAX_RETRIES)


class RunConfig(Section):
    problem: ProblemConfig
    error: str = "f_cos"
    """The metric minimised as the error objective: f_cos or one of the problem's error metrics."""
    quant: QuantConfig = QuantConfig()
    layers: LayersConfig = LayersConfig()
    search: SearchConfig = SearchConfig()
    evaluator: EvaluatorConfig = EvaluatorConfig()
    seed: Integer = 0
    """numpy's and pymoo's seed: 0 <= seed < 2**32."""
    target: Annotated[str | None, registered(TARGETS)] = None
    """Deployment target: restricts every layer's alphabet to what it can run."""
    custom_imports: list[str] = []
    """Modules imported before the config is checked, whose decorators register the
    user's own parts (``evoquant.registry``); left out of the digest when empty."""

    @model_validator(mode="before")
    @classmethod
    def _import_parts(cls, data: Any) -> Any:
        """Import ``custom_imports`` first, so the names they register are known."""
        modules = data.get("custom_imports") if isinstance(data, dict) else None
        if not isinstance(modules, list):
            return data
        for name in modules:
            if not isinstance(name, str):
                continue  # the field's own check reports it
            try:
                importlib.import_module(name)
            except ImportError as error:
                raise ValueError(
                    f"custom_imports: cannot import {name!r}: {error}"
                ) from None
        return data

    @field_validator("seed")
    @classmethod
    def _check_seed(cls, value: int) -> int:
        if not 0 <= value < SEED_LIMIT:
            raise ValueError(f"seed must be in [0, 2**32), not {value}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _target_quant(cls, data: Any) -> Any:
        """``target: tensorrt`` searches what it deploys: the tensorrt scheme and its bit configs.

        Both are the defaults under the target; an explicit ``quant.scheme: thesis``
        (asymmetric, zero-points) is refused rather than silently replaced.
        """
        if not isinstance(data, dict) or data.get("target") != "tensorrt":
            return data
        quant = data.get("quant", {})
        if isinstance(quant, BaseModel):
            quant = quant.model_dump(exclude_unset=True, context=COMPLETE)
        if not isinstance(quant, dict):
            return data
        scheme = scheme_name(quant.get("scheme", "tensorrt"))
        if scheme != "tensorrt":
            raise ValueError(
                f"target tensorrt deploys symmetric quantization: quant.scheme must be "
                f"tensorrt, not {scheme}"
            )
        defaults = {"scheme": "tensorrt", "bit_configs": TENSORRT_BIT_CONFIGS}
        weights = quant.get("weights", {})
        if isinstance(weights, dict):
            quant = quant | {"weights": TENSORRT_WEIGHTS | weights}
        return data | {"quant": defaults | quant}

    @model_validator(mode="after")
    def _check_across_sections(self) -> RunConfig:
        """What one section cannot judge alone; the search space checks the same again."""
        alphabet = sorted(set(self.search.alphabet))
        for pattern, bits in self.layers.fixed.items():
            if bits not in alphabet:
                raise ValueError(
                    f"layers.fixed {pattern!r}: {bits} bits is not in search.alphabet "
                    f"{alphabet}"
                )
        block = self.quant.weights.block
        if self.target == "tensorrt" and block not in (None, *INT4_BLOCK_SIZES):
            raise ValueError(
                f"quant.weights.block_size: target tensorrt runs INT4 blocks of "
                f"{' or '.join(map(str, INT4_BLOCK_SIZES))}, not {block}"
            )
        policy = lookup(GENE_POLICIES, self.search.policy)
        if self.target is not None and not getattr(policy, "derives_activations", True):
            raise ValueError(
                f"target {self.target} derives activations from weights: use "
                "search.policy thesis"
            )
        seeding = self.search.seeding
        if (seeding.enabled or self.search.screening.enabled) and (
            seeding.base_bits not in alphabet
        ):
            raise ValueError(
                f"search.seeding.base_bits {seeding.base_bits} is not in search.alphabet "
                f"{alphabet}: the sensitivity probes start from it"
            )
        cost = self.search.objectives[0]
        if cost == self.error:
            raise ValueError(
                f"search.objectives: the first objective must be a cost, and {cost!r} "
                "is the error metric"
            )
        return self

    def digest(self) -> str:
        """A stable hash of every setting, to tell whether a run dir matches a config.

        An unset ``target`` or ``search.offspring`` is left out, so runs made before
        they existed keep their digest.
        Where genomes are scored (``evaluator``) is left out too, so a run can resume on
        another back-end or cluster; only a thread count other than the default 1 counts,
        since it changes the last bits of the scores. ``layers.attention`` and
        ``layers.dead`` count only when switched from their defaults.
        """
        settings = self.model_dump(mode="json")
        if settings["target"] is None:
            del settings["target"]
        if not settings["custom_imports"]:
            del settings["custom_imports"]
        if settings["search"]["offspring"] is None:
            del settings["search"]["offspring"]
        for key, default in LAYERS_DIGEST_DEFAULTS.items():
            if settings["layers"][key] == default:
                del settings["layers"][key]
        threads = settings.pop("evaluator")["threads_per_worker"]
        if threads != 1:
            settings["threads_per_worker"] = threads
        text = json.dumps(settings, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _first_error(error: ValidationError) -> str:
    """``where: message``; a check across sections names its keys in the message itself."""
    detail = error.errors()[0]
    message = detail["msg"]
    if detail["type"] == "extra_forbidden":
        message = "unknown key"
    if not detail["loc"]:
        return message.removeprefix("Value error, ")
    return ".".join(str(part) for part in detail["loc"]) + f": {message}"


def parse_config(data: Any, source: str = "config", stored: bool = False) -> RunConfig:
    """Validate a plain mapping; the first problem found becomes a one-line UserError.

    ``stored``: a config a run file holds, whose ``quant`` without ``activations``
    means the scheme's legacy ones (``LEGACY_ACTIVATIONS``), not today's defaults, and
    one without ``weights`` per-channel weights (``LEGACY_WEIGHTS``), even under a target.
    """
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of settings")
    quant = data.get("quant")
    if stored and isinstance(quant, dict) and "weights" not in quant:
        data = data | {"quant": quant | {"weights": LEGACY_WEIGHTS.model_dump()}}
        quant = data["quant"]
    if stored and isinstance(quant, dict) and "activations" not in quant:
        implied = "tensorrt" if data.get("target") == "tensorrt" else "thesis"
        legacy = LEGACY_ACTIVATIONS.get(scheme_name(quant.get("scheme", implied)))
        if legacy is not None:
            data = data | {"quant": quant | {"activations": legacy.model_dump()}}
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise UserError(f"{source}: {_first_error(error)}") from None
    except RecursionError:
        raise UserError(f"{source}: settings nested too deeply") from None


def _merge(settings: dict[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(settings)
    for key, value in updates.items():
        if value is None:
            continue
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def with_overrides(
    config: RunConfig, updates: Mapping[str, Any], source: str = "command line"
) -> RunConfig:
    """``config`` with ``updates`` applied, validated as a config file is.

    ``updates`` maps top-level keys to values and section names to mappings of the
    section's keys, merged into it: ``{"seed": 3, "search": {"pop_size": 8}}``. A
    ``None`` value is no update (a command-line flag that was not given). A wrong
    value is a one-line UserError starting with ``source``, unlike
    ``model_copy(update=...)``, which checks nothing.
    """
    return parse_config(_merge(config.model_dump(context=COMPLETE), updates), source)


def load_config(path: str | Path) -> RunConfig:
    """The config in the YAML file ``path``; every way it can be wrong is a UserError."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a config file")
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{path}: not a UTF-8 text file (byte {raw[error.start]:#04x} at "
            f"offset {error.start})"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UserError(
            f"{path}: not valid YAML ({error.__class__.__name__})"
        ) from None
    except RecursionError:
        raise UserError(f"{path}: YAML nested too deeply") from None
    return parse_config(data, str(path))
