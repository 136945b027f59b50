"""``bench-engine``: latency statistics, its refusals, and the timing loop.

Without TensorRT the loop runs on stand-ins for ``tensorrt`` and ``pycuda.driver``
that record what it asks of them; the real engine is timed only where a GPU is.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from evoquant.errors import UserError
from evoquant.export import bench
from evoquant.export.bench import bench_engine, latency_stats
from tests.evoquant.export.tensorrt_presence import needs_gpu, without_tensorrt


def test_latency_statistics():
    stats = latency_stats([float(t) for t in range(1, 101)])
    assert stats["mean_ms"] == pytest.approx(50.5)
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p99_ms"] == pytest.approx(99.01)
    assert (stats["min_ms"], stats["max_ms"]) == (1.0, 100.0)
    with pytest.raises(ValueError):
        latency_stats([])


def test_bench_refuses_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="--runs"):
        bench_engine(tmp_path / "x.engine", runs=0)
    with pytest.raises(UserError, match="not found"):
        bench_engine(tmp_path / "absent.engine")


@without_tensorrt
def test_without_tensorrt_bench_is_a_one_line_user_error(tmp_path):
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"")
    with pytest.raises(UserError, match="TensorRT engines need") as error:
        bench_engine(engine)
    assert "\n" not in str(error.value)


class FakeEngine:
    """One dynamic input ``x`` of ``(batch, 4)`` and its output ``y`` of ``(batch, 2)``."""

    num_io_tensors = 2
    profile = ((1, 4), (8, 4), (16, 4))  # min, tuned, max

    def __init__(self, calls: dict, fixed_output: bool = True):
        self.calls = calls
        self.fixed_output = fixed_output

    def get_tensor_name(self, i):
        return "xy"[i]

    def get_tensor_mode(self, name):
        return "input" if name == "x" else "output"

    def get_tensor_shape(self, name):
        return (-1, 4) if name == "x" else (-1, 2)

    def get_tensor_profile_shape(self, name, profile):
        return self.profile

    def get_tensor_dtype(self, name):
        return np.float32

    def create_execution_context(self):
        calls, fixed_output = self.calls, self.fixed_output

        class Execution:
            shape = None

            def set_input_shape(self, name, shape):
                calls["input_shape"] = (name, tuple(shape))
                self.shape = tuple(shape)

            def get_tensor_shape(self, name):
                if name == "x":
                    return self.shape
                return (self.shape[0], 2) if fixed_output else (-1, 2)

            def set_tensor_address(self, name, address):
                calls.setdefault("addresses", {})[name] = address

            def execute_async_v3(self, handle):
                calls["executions"] += 1

        return Execution()


class FakeLogger:
    WARNING = 2

    def __init__(self, level: int):
        self.level = level


def fake_tensorrt(engine):
    def runtime(logger):
        return SimpleNamespace(deserialize_cuda_engine=lambda data: engine)

    return SimpleNamespace(
        __version__="10.fake",
        Logger=FakeLogger,
        Runtime=runtime,
        TensorIOMode=SimpleNamespace(INPUT="input"),
        nptype=lambda dtype: dtype,
    )


def fake_cuda(calls: dict):
    """Events 0.5 ms apart; host buffers are numpy arrays, device ones numbered."""
    clock = iter(np.arange(0, 1e3, 0.5))

    class Event:
        def record(self, stream):
            self.at = next(clock)

        def synchronize(self):
            pass

        def time_till(self, end):
            return end.at - self.at

    def copy(direction):
        return lambda target, source, stream: calls[direction].append((source, stream))

    def mem_alloc(nbytes):
        calls["allocated"].append(nbytes)
        return len(calls["allocated"])  # a device address

    context = SimpleNamespace(pop=lambda: calls.update(popped=True))
    device = SimpleNamespace(make_context=lambda: context, name=lambda: "Fake GPU")
    return SimpleNamespace(
        Device=lambda index: device,
        Stream=lambda: SimpleNamespace(handle=7, synchronize=lambda: None),
        Event=Event,
        pagelocked_empty=lambda shape, dtype: np.zeros(shape, dtype),
        mem_alloc=mem_alloc,
        memcpy_htod_async=copy("to_device"),
        memcpy_dtoh_async=copy("to_host"),
    )


@pytest.fixture
def calls():
    return {"executions": 0, "allocated": [], "to_device": [], "to_host": []}


def fake_bench(monkeypatch, tmp_path, calls, engine):
    monkeypatch.setattr(
        bench, "require_tensorrt", lambda: (fake_tensorrt(engine), fake_cuda(calls))
    )
    path = tmp_path / "model.engine"
    path.write_bytes(b"serialized")
    return path


def test_each_run_copies_in_executes_and_copies_out_at_the_tuned_shape(
    monkeypatch, tmp_path, calls
):
    path = fake_bench(monkeypatch, tmp_path, calls, FakeEngine(calls))
    result = bench_engine(path, runs=5, warmup=3)
    assert calls["input_shape"] == ("x", (8, 4))
    assert calls["allocated"] == [8 * 4 * 4, 8 * 2 * 4]
    assert calls["executions"] == 3 + 5
    assert len(calls["to_device"]) == len(calls["to_host"]) == 3 + 5
    streams = {id(stream) for _, stream in calls["to_device"] + calls["to_host"]}
    assert len(streams) == 1  # the copies queue on the inference's stream
    host_input = calls["to_device"][0][0]
    assert host_input.shape == (8, 4) and host_input.std() > 0.5  # random inputs
    assert calls["addresses"] == {"x": 1, "y": 2}
    assert calls["popped"]
    assert result["runs"] == 5 and result["warmup"] == 3
    assert result["device"] == "Fake GPU" and result["tensorrt"] == "10.fake"
    assert result["p50_ms"] == result["max_ms"] == 0.5  # one copy-execute-copy each


def test_an_engine_tensorrt_cannot_load_or_run_whole_is_a_user_error(
    monkeypatch, tmp_path, calls
):
    path = fake_bench(monkeypatch, tmp_path, calls, None)
    with pytest.raises(UserError, match="is not an engine TensorRT 10.fake can load"):
        bench_engine(path)
    assert calls["popped"]  # the CUDA context is released all the same
    engine = FakeEngine(calls, fixed_output=False)
    path = fake_bench(monkeypatch, tmp_path, calls, engine)
    with pytest.raises(UserError, match=r"tensor y has a dynamic shape \(-1, 2\)"):
        bench_engine(path)


@needs_gpu
def test_bench_engine_times_an_engine(digits_run, tmp_path):
    from evoquant.export.run import export_run

    export_run(digits_run, "min-error:8b", tmp_path, build_engines=True)
    result = bench_engine(tmp_path / "model.engine", runs=20, warmup=5)
    assert result["runs"] == 20 and result["p99_ms"] >= result["p50_ms"] > 0
