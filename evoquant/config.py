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


class RunConfig(Section):
    problem: ProblemConfig
    error: str = "f_cos"
    """The metric minimised as the error objective: f_cos or one of the problem's error metrics."""
    quant: QuantConfig = QuantConfig()
    layers: LayersConfig = LayersConfig()
    search: SearchConfig = SearchConfig()
    seed: int = 0

    def digest(self) -> str:
        """A stable hash of every setting, to tell whether a run dir matches a config."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
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
