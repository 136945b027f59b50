"""What every back-end is to the search: bit lists in, ``(bits, metrics)`` out."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol


class GenomeEvaluator(Protocol):
    """Bit lists in; ``(bits, metrics)`` out as each finishes, in any order.

    A failed genome's metrics hold ``"failed": <error text>``.
    """

    def evaluate(
        self, genomes: list[list[int]]
    ) -> Iterator[tuple[list[int], Mapping[str, Any]]]: ...
