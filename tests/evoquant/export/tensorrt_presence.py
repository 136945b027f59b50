"""Whether TensorRT and a GPU are here, for the export tests that need them or their absence."""

import pytest

from evoquant.errors import UserError
from evoquant.export.engine import require_tensorrt


def tensorrt_missing() -> str | None:
    """Why TensorRT cannot run here (the one-line error users get), or None."""
    try:
        require_tensorrt()
    except UserError as error:
        return str(error)
    return None


MISSING = tensorrt_missing()
needs_gpu = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
without_tensorrt = pytest.mark.skipif(
    MISSING is None, reason="TensorRT and a GPU are present"
)
