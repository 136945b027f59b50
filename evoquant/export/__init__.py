"""Deployment: a chosen genome -> ONNX with explicit Q/DQ -> (optionally) a TensorRT engine.

``support`` says what TensorRT can run (also used by the search space's
``target: tensorrt``), ``pick`` chooses a front point, ``plan`` turns its genes into
deployed precisions, ``graph`` exports FP32 ONNX, ``qdq`` inserts the quantization,
``validate`` compares onnxruntime with the fake-quantized PyTorch model, ``engine``
and ``bench`` build and time TensorRT engines, ``report`` writes the export report and
``run`` ties them together for ``evoquant export``. Nothing here imports onnx or
TensorRT at package import time, so the search never pays for them.
"""
