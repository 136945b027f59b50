"""Run configuration: YAML validated against a schema, unknown keys rejected."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from evoquant.errors import UserError
from evoquant.export.support import W4A16, W8A8, W16A16
from evoquant.quant.fakequant import BIT_WIDTHS


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProblemConfig(Section):
    """``name`` is a registered problem or an import path ``package.module:factory``."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class AlphaConfig(Section):
    """The stage-2 grid of scale factors; ``enabled: false`` is the thesis's "Q" variant."""

    enabled: bool = True
    start: float = 0.80
    stop: float = 1.20
    step: float = 0.02

    @model_validator(mode="after")
    def _check_grid(self) -> AlphaConfig:
        if not (0 < self.start <= self.stop) or self.step <= 0:
            raise ValueError("alpha grid needs 0 < start <= stop and step > 0")
        return self

    def grid(self) -> list[float]:
        if not self.enabled:
            return [1.0]
        count = round((self.stop - self.start) / self.step) + 1
        return [round(self.start + i * self.step, 10) for i in range(count)]


class QuantConfig(Section):
    scheme: Literal["thesis", "tensorrt"] = "thesis"
    bit_configs: list[tuple[int, int]] = [(2, 8), (4, 8), (8, 8), (16, 16)]
    alpha: AlphaConfig = AlphaConfig()

    @field_validator("bit_configs")
    @classmethod
    def _check_bits(cls, configs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        for w, a in configs:
            if w not in BIT_WIDTHS or a not in BIT_WIDTHS:
                raise ValueError(
                    f"bit config W{w}A{a}: bit-widths must be in {BIT_WIDTHS}"
                )
        return configs


class LayersConfig(Section):
    """Glob patterns on dotted layer names; ``fixed`` pins layers to one bit-width."""

    include: list[str] = []
    exclude: list[str] = []
    fixed: dict[str, int] = {}


class SearchConfig(Section):
    pop_size: int = 100
    generations: int = 50
    mutation: Literal["adjacent", "random_reset"] = "adjacent"
    mutation_prob: float | None = None
    crossover: Literal["midpoint", "random", "module"] = "midpoint"
    crossover_prob: float = 0.9
    policy: Literal["thesis", "two_genes"] = "thesis"
    alphabet: list[int] = list(BIT_WIDTHS)
    objectives: list[str] = ["f_bits", "error"]

    @field_validator("pop_size")
    @classmethod
    def _check_pop(cls, value: int) -> int:
        if value < 2:
            raise ValueError("pop_size must be at least 2")
        return value

    @field_validator("generations")
    @classmethod
    def _check_generations(cls, value: int) -> int:
        if value < 1:
            raise ValueError("generations must be at least 1")
        return value


TENSORRT_BIT_CONFIGS = [W4A16, W8A8, W16A16]
"""The bit configs TensorRT runs: INT4 weight-only with FP16 activations, INT8, FP16."""


class EvaluatorConfig(Section):
    """Where genomes are scored: in this process (``local``) or on Ray actors (``ray``).

    ``workers`` defaults to every CPU of the Ray cluster (``threads_per_worker`` each),
    or every GPU when the model runs on CUDA; ``gpus_per_worker`` defaults to 1 then and
    to 0 otherwise. ``ray_address`` absent starts a private local Ray instance; ``auto``
    joins the cluster started with ``ray start --head``. A genome whose evaluation
    raises is tried ``retries`` more times before it is recorded as failed.
    """

    backend: Literal["local", "ray"] = "ray"
    workers: int | None = None
    ray_address: str | None = None
    gpus_per_worker: float | None = None
    threads_per_worker: int = 1
    retries: int = 2
    ray_dashboard: bool = False

    @field_validator("workers")
    @classmethod
    def _check_workers(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("workers must be at least 1")
        return value

    @field_validator("gpus_per_worker")
    @classmethod
    def _check_gpus(cls, value: float | None) -> float | None:
        if value is not None and not value >= 0:
            raise ValueError("gpus_per_worker must be 0 or more (fractions allowed)")
        return value

    @field_validator("threads_per_worker")
    @classmethod
    def _check_threads(cls, value: int) -> int:
        if value < 1:
            raise ValueError("threads_per_worker must be at least 1")
        return value

    @field_validator("retries")
    @classmethod
    def _check_retries(cls, value: int) -> int:
        if value < 0:
            raise ValueError("retries must be 0 or more")
        return value


class RunConfig(Section):
    problem: ProblemConfig
    error: str = "f_cos"
    """The metric minimised as the error objective: f_cos or one of the problem's error metrics."""
    quant: QuantConfig = QuantConfig()
    layers: LayersConfig = LayersConfig()
    search: SearchConfig = SearchConfig()
    evaluator: EvaluatorConfig = EvaluatorConfig()
    seed: int = 0
    target: Literal["tensorrt"] | None = None
    """Deployment target: restricts every layer's alphabet to what it can run."""

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
            quant = quant.model_dump(exclude_unset=True)
        if not isinstance(quant, dict):
            return data
        scheme = quant.get("scheme", "tensorrt")
        if scheme != "tensorrt":
            raise ValueError(
                f"target tensorrt deploys symmetric quantization: quant.scheme must be "
                f"tensorrt, not {scheme}"
            )
        defaults = {"scheme": "tensorrt", "bit_configs": TENSORRT_BIT_CONFIGS}
        return data | {"quant": defaults | quant}

    def digest(self) -> str:
        """A stable hash of every setting, to tell whether a run dir matches a config.

        An unset ``target`` is left out, so runs made before targets existed keep their digest.
        Where genomes are scored (``evaluator``) is left out too, so a run can resume on
        another back-end or cluster; only a thread count other than the default 1 counts,
        since it changes the last bits of the scores.
        """
        settings = self.model_dump(mode="json")
        if settings["target"] is None:
            del settings["target"]
        threads = settings.pop("evaluator")["threads_per_worker"]
        if threads != 1:
            settings["threads_per_worker"] = threads
        text = json.dumps(settings, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _first_error(error: ValidationError) -> str:
    detail = error.errors()[0]
    where = ".".join(str(part) for part in detail["loc"]) or "config"
    message = detail["msg"]
    if detail["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{where}: {message}"


def parse_config(data: Any, source: str = "config") -> RunConfig:
    """Validate a plain mapping; the first problem found becomes a one-line UserError."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of settings")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise UserError(f"{source}: {_first_error(error)}") from None


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UserError(
            f"{path}: not valid YAML ({error.__class__.__name__})"
        ) from None
    return parse_config(data, str(path))
