"""evoquant: evolutionary search for mixed-precision post-training quantization."""

__version__ = "0.2.0"
