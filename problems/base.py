"""The problem protocol, re-exported: it lives in the engine (``evoquant.problem``).

Kept so that ``from problems.base import Problem`` goes on working; new code imports
``evoquant.api``.
"""

from evoquant.problem import (
    ROLES,
    Batch,
    ExportPart,
    Outputs,
    Problem,
    role_overlaps,
    sample_fingerprints,
)

__all__ = [
    "ROLES",
    "Batch",
    "ExportPart",
    "Outputs",
    "Problem",
    "role_overlaps",
    "sample_fingerprints",
]
