"""Edge TPU handling without an Edge TPU: the delegate cannot load here (no libedgetpu), so the
compiled model falls back to its CPU twin; a device that fails mid-run is simulated by an
interpreter class that wraps the real one (the only fake: the hardware is absent)."""
import logging
import shutil

import numpy as np
import pytest

from edge.inference.accelerator import AcceleratedModel, AcceleratorSettings, cpu_twin, edgetpu_twin
from edge.errors import AcceleratorError
from edge.inference.runtime import Runtime, find_runtime
from tests.conftest import shared_path


@pytest.fixture
def compiled_pair():
    return shared_path("models", "coral_pair", "mask_detector_quant_v2_edgetpu.tflite")


def test_twin_names():
    assert cpu_twin("m/x_int8_edgetpu.tflite") == "m/x_int8.tflite"
    assert edgetpu_twin("m/x_int8.tflite") == "m/x_int8_edgetpu.tflite"


def test_without_libedgetpu_the_cpu_twin_runs_with_a_warning(compiled_pair, caplog):
    with caplog.at_level(logging.WARNING):
        model = AcceleratedModel(compiled_pair)
    assert model.accelerator == "cpu"
    assert model.model_path == cpu_twin(compiled_pair)
    assert "libedgetpu" in model.fallback_reason
    assert "Edge TPU unavailable" in caplog.text and "libedgetpu" in caplog.text
    details = model.get_input_details()[0]
    model.set_tensor(details["index"], np.zeros(details["shape"], np.uint8))
    model.invoke()
    assert model.get_tensor(model.get_output_details()[0]["index"]).shape == (1, 2)


def test_require_accelerator_turns_the_fallback_into_an_error_that_says_what_to_check(compiled_pair):
    with pytest.raises(AcceleratorError) as info:
        AcceleratedModel(compiled_pair, AcceleratorSettings(require=True))
    message = str(info.value)
    for hint in ("libedgetpu", "udev", "plugdev", "USB", "gasket"):
        assert hint in message


def test_a_missing_cpu_twin_is_reported(compiled_pair, tmp_path):
    lone = tmp_path / "lone_edgetpu.tflite"
    shutil.copyfile(compiled_pair, lone)
    with pytest.raises(AcceleratorError, match="CPU twin .*lone.tflite is missing"):
        AcceleratedModel(str(lone))


class FailingTpuInterpreter:
    """Stands in for an interpreter with the Edge TPU delegate: runs the CPU twin through the real
    runtime, and raises as libedgetpu does once the device is unplugged."""

    fail_after = 2

    def __init__(self, model_path, experimental_delegates=None, num_threads=None):
        self.on_tpu = bool(experimental_delegates)
        self.real = find_runtime().interpreter_class(model_path=cpu_twin(model_path))
        self.invokes = 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def invoke(self):
        self.invokes += 1
        if self.on_tpu and self.invokes > self.fail_after:
            raise RuntimeError("Failed to invoke: Edge TPU USB transfer error")
        self.real.invoke()


def test_a_device_that_disappears_while_running_falls_back_to_the_cpu(compiled_pair, caplog):
    runtime = Runtime("fake-tpu", FailingTpuInterpreter, None)
    model = AcceleratedModel(compiled_pair, runtime=runtime,
                             delegate_loader=lambda runtime, device: object())
    assert model.accelerator == "edgetpu"
    details = model.get_input_details()[0]
    image = np.random.default_rng(0).integers(0, 255, details["shape"], dtype=np.uint8)
    outputs = []
    with caplog.at_level(logging.WARNING):
        for _ in range(4):
            model.set_tensor(details["index"], image)
            model.invoke()
            outputs.append(model.get_tensor(model.get_output_details()[0]["index"]).copy())
    assert model.accelerator == "cpu"
    assert "USB transfer error" in model.fallback_reason and "failed while running" in caplog.text
    assert all(np.array_equal(o, outputs[0]) for o in outputs)  # no frame lost or changed


def test_a_device_failure_with_require_accelerator_is_an_error(compiled_pair):
    runtime = Runtime("fake-tpu", FailingTpuInterpreter, None)
    model = AcceleratedModel(compiled_pair, AcceleratorSettings(require=True), runtime=runtime,
                             delegate_loader=lambda runtime, device: object())
    details = model.get_input_details()[0]
    model.set_tensor(details["index"], np.zeros(details["shape"], np.uint8))
    model.invoke()
    model.invoke()
    with pytest.raises(AcceleratorError, match="required"):
        model.invoke()


def test_the_delegate_is_asked_for_the_configured_device(monkeypatch):
    import edge.inference.accelerator as acc

    calls = []
    monkeypatch.setattr(acc.ctypes, "CDLL", lambda name: name)
    runtime = Runtime("recorder", None, lambda library, options: calls.append((library, options)) or "d")
    assert acc.load_edgetpu_delegate(runtime, "pci:0") == "d"
    acc.load_edgetpu_delegate(runtime)
    assert calls == [("libedgetpu.so.1", {"device": "pci:0"}), ("libedgetpu.so.1", {})]


@pytest.mark.parametrize("name", ["ai_edge_litert", "tensorflow"])
def test_each_installed_runtime_opens_a_model(name, compiled_pair):
    import importlib.util

    from edge.inference.runtime import open_interpreter

    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed")
    runtime = find_runtime(name)
    assert runtime.name == name
    interpreter = open_interpreter(cpu_twin(compiled_pair), runtime)
    assert list(interpreter.get_input_details()[0]["shape"]) == [1, 224, 224, 3]
