"""What every benchmark records about the machine it ran on (this one is shared and noisy)."""

from __future__ import annotations

import os
import platform

import torch


def hardware(**extra: object) -> dict[str, object]:
    """Machine, cores, torch build and the load average now, plus ``extra`` fields."""
    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "load_average": os.getloadavg(),
        **extra,
    }
