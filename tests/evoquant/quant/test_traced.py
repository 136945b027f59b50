import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evoquant.quant.fakequant import compute_qparams, fake_quantize
from evoquant.quant.traced import TensorQuantizer
from tests.evoquant.quant.test_fakequant import (
    SCHEME_BITS,
    near_ties,
    quantizers,
    samples,
)


@pytest.mark.parametrize(("scheme", "bits"), SCHEME_BITS)
def test_per_tensor_equals_fake_quantize_bit_for_bit(scheme, bits):
    for i, qp in enumerate(quantizers(bits, scheme)):
        for x in (samples(i), near_ties(qp) if not qp.fp16 else samples(i + 99)):
            assert torch.equal(TensorQuantizer.of(qp)(x), fake_quantize(x, qp))


@pytest.mark.parametrize(("scheme", "bits"), SCHEME_BITS)
def test_per_channel_equals_fake_quantize_bit_for_bit(scheme, bits):
    x = samples(7)
    low = torch.tensor([-1.0, 2.0, -4.0])  # Z inside, below and above the grid
    qp = compute_qparams(low, low + 2.0, bits, scheme, axis=1, alpha=0.8)
    assert torch.equal(TensorQuantizer.of(qp)(x), fake_quantize(x, qp))


def test_off_passes_the_input_through_exactly():
    qp = compute_qparams(torch.tensor(-1.0), torch.tensor(3.0), 2, "thesis", None)
    x = samples(3)
    assert torch.equal(TensorQuantizer.of(qp).off()(x), x)


def test_a_half_precision_input_is_quantized_as_the_eager_path_does():
    qp = compute_qparams(torch.tensor(-1.0), torch.tensor(3.0), 8, "thesis", None)
    x = samples(4).half()
    out = TensorQuantizer.of(qp)(x)
    assert out.dtype == torch.float16
    assert torch.equal(out, fake_quantize(x, qp))


@pytest.mark.slow
def test_each_cpu_capability_compiles_its_own_kernels(tmp_path):
    """Inductor's cache would hand one capability's kernels to another (garbage)."""
    env = os.environ | {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path)}
    script = Path(__file__).with_name("compiled_error.py")
    for capability in (None, "default"):  # the machine's own, then the plain one
        run_env = dict(env)
        run_env.pop("ATEN_CPU_CAPABILITY", None)
        if capability is not None:
            run_env["ATEN_CPU_CAPABILITY"] = capability
        out = subprocess.run(
            [sys.executable, str(script), "[4, 4]"],
            env=run_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        errors = json.loads(out.strip().splitlines()[-1])
        assert errors["True"] == pytest.approx(errors["False"], rel=1e-2)
    assert {p.name for p in tmp_path.iterdir()} >= {"cpu_default"}
