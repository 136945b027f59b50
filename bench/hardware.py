"""What every benchmark records about the machine it ran on (this one is shared and noisy)."""

from __future__ import annotations

import os
import platform

import torch


def hardware(**extra: object) -> dict[str, object]:
    """Machine, cores, torch build, the CPU kernels it picked (``ATEN_CPU_CAPABILITY``
    may lower them) and the load average now, plus ``extra`` fields."""
    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average": os.getloadavg(),
        **extra,
    }
