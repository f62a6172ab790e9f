"""Edge TPU handling without an Edge TPU: the delegate cannot load here (no libedgetpu), so the
compiled model (whose worker process finds no libedgetpu) falls back to its CPU twin. Failures
of a libedgetpu that loads are in test_edgetpu_worker.py, against a stand-in built from C."""
import logging
import shutil

import numpy as np
import pytest

from edge.inference.accelerator import AcceleratedModel, AcceleratorSettings, cpu_twin, edgetpu_twin
from edge.errors import AcceleratorError
from edge.inference.runtime import find_runtime
from tests.conftest import shared_path


@pytest.fixture(autouse=True)
def no_libedgetpu(monkeypatch, tmp_path):
    """These tests are about a machine without libedgetpu, whatever this one has installed."""
    monkeypatch.setenv("MASKDET_EDGETPU_LIBRARY", str(tmp_path / "no" / "libedgetpu.so.1"))
    for name in ("MASKDET_STAND_IN", "MASKDET_STAND_IN_FAULT", "MASKDET_STAND_IN_FAULT_AFTER"):
        monkeypatch.delenv(name, raising=False)


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


# A device that fails while running (crash, abort, hang, error) is in test_edgetpu_worker.py: the
# Edge TPU runs in a worker process there, against a stand-in libedgetpu built from C.


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
