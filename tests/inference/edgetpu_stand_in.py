"""The stand-in libedgetpu (tests/stand_in/libedgetpu_stand_in.c), built by gcc once per test
session, and the fixtures that point the Edge TPU worker at it.

The stand-in's delegate claims no node, so an `x_int8_edgetpu.tflite` that is a copy of the CPU
model runs on the CPU kernels under it, in the worker process; what it does when a delegate is
created (ok, none, segv, bus, abort, hang) is read from a control file at every creation, so a
test can make a failing "device" recover. Faults in the middle of a run come from the worker's
fault hook ($MASKDET_STAND_IN_FAULT, read when a worker starts).
"""
import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

SOURCE = os.path.join(REPO_ROOT, "tests", "stand_in", "libedgetpu_stand_in.c")
CLASSIFIER = os.path.join(REPO_ROOT, "models", "mask_classifier_int8.tflite")


def build_stand_in(folder):
    """Compile the stand-in into `folder`/libedgetpu.so.1 (the name the dynamic loader looks
    for); its path. Skips when there is no gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("needs gcc to build the stand-in libedgetpu (apt-get install gcc)")
    os.makedirs(folder, exist_ok=True)
    out = os.path.join(folder, "libedgetpu.so.1")
    subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out,
                    SOURCE], check=True, capture_output=True, text=True)
    return out


@pytest.fixture(scope="session")
def stand_in_library(tmp_path_factory):
    """Path of the stand-in libedgetpu.so.1, built once for the session."""
    return build_stand_in(str(tmp_path_factory.mktemp("stand_in")))


class StandIn:
    """The stand-in as one test sees it: its behaviour at delegate creation, and its call log."""

    def __init__(self, library, control, log):
        self.library = library
        self.control = control
        self.log = log

    def behave(self, word):
        """What the next delegate creation does: ok, none, segv, bus, abort or hang."""
        with open(self.control, "w") as handle:
            handle.write(word + "\n")

    def calls(self):
        """[(pid, device)] of every delegate creation so far."""
        if not os.path.exists(self.log):
            return []
        with open(self.log) as handle:
            pairs = [dict(p.split("=", 1) for p in line.split()) for line in handle if line.strip()]
        return [(int(p["pid"]), p["device"]) for p in pairs]

    @property
    def folder(self):
        """The folder that holds libedgetpu.so.1 (for LD_LIBRARY_PATH)."""
        return os.path.dirname(self.library)


@pytest.fixture
def stand_in(stand_in_library, tmp_path, monkeypatch):
    """The stand-in, in effect for the Edge TPU workers this test starts (`ok` to begin with)."""
    device = StandIn(stand_in_library, str(tmp_path / "stand_in_control"),
                     str(tmp_path / "stand_in_calls.log"))
    device.behave("ok")
    monkeypatch.setenv("MASKDET_EDGETPU_LIBRARY", stand_in_library)
    monkeypatch.setenv("MASKDET_STAND_IN_CONTROL", device.control)
    monkeypatch.setenv("MASKDET_STAND_IN_LOG", device.log)
    for name in ("MASKDET_STAND_IN", "MASKDET_STAND_IN_FAULT", "MASKDET_STAND_IN_FAULT_AFTER",
                 "MASKDET_EDGETPU_INVOKE_TIMEOUT_S", "MASKDET_EDGETPU_LOAD_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    return device


def classifier_input_shape():
    """The shipped classifier's input shape, from its metadata."""
    from edge.inference.model_meta import load_classifier_meta
    from edge.paths import default_classifier

    size = load_classifier_meta(default_classifier()).input_size
    return [1, size, size, 3]


def make_pair(folder, name="x_int8", source=CLASSIFIER):
    """`name.tflite` and its `_edgetpu` twin (a copy) in `folder`; the CPU model's path."""
    os.makedirs(folder, exist_ok=True)
    cpu = os.path.join(folder, f"{name}.tflite")
    shutil.copyfile(source, cpu)
    shutil.copyfile(source, os.path.join(folder, f"{name}_edgetpu.tflite"))
    return cpu


def cpu_outputs(interpreter_path, image):
    """The outputs of the CPU model for `image` (the reference every path must give)."""
    from edge.inference.runtime import open_interpreter

    interpreter = open_interpreter(interpreter_path)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def run_once(model, image):
    """Set the input, invoke, return the outputs (as the detectors and classifier do)."""
    model.set_tensor(model.get_input_details()[0]["index"], image)
    model.invoke()
    return [model.get_tensor(d["index"]) for d in model.get_output_details()]


def random_image(model_or_shape, seed=0):
    """A random uint8 input for a model (or a shape)."""
    shape = model_or_shape if isinstance(model_or_shape, tuple) else \
        tuple(model_or_shape.get_input_details()[0]["shape"])
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def wait_until(condition, timeout, what, step=None):
    """Call `step` (if any) and then `condition` until it is true, at most `timeout` s; fails
    naming `what` otherwise. No fixed sleep decides anything: the wait only paces the loop."""
    deadline = time.monotonic() + timeout
    while True:
        if step is not None:
            step()
        if condition():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def process_is_gone(pid):
    """True when no process `pid` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
