"""Which TFLite interpreter this machine has, and opening a model with it.

Order: `ai_edge_litert` (fast int8 through XNNPACK), `tflite_runtime` (32-bit Pi OS, Python 3.9),
then `tensorflow.lite`. TensorFlow is tried last and only when neither runtime is installed.
"""
import contextlib
import importlib
import logging
import os
import sys
import tempfile
import threading
from dataclasses import dataclass

from edge.errors import ModelError

log = logging.getLogger(__name__)

RUNTIME_MODULES = (
    ("ai_edge_litert", "ai_edge_litert.interpreter"),
    ("tflite_runtime", "tflite_runtime.interpreter"),
    ("tensorflow", "tensorflow.lite"),
)


@dataclass(frozen=True)
class Runtime:
    """A TFLite runtime: its name, Interpreter class and load_delegate function."""

    name: str
    interpreter_class: type
    load_delegate: object


def _import_runtime(name, module_name):
    if name == "tensorflow":  # tf.lite is an attribute of the package, not an importable module
        lite = importlib.import_module("tensorflow").lite
        return Runtime(name, lite.Interpreter, lite.experimental.load_delegate)
    module = importlib.import_module(module_name)
    return Runtime(name, module.Interpreter, module.load_delegate)


def find_runtime(preferred=None):
    """The first importable runtime (or exactly `preferred`, else $MASKDET_RUNTIME: one of
    ai_edge_litert, tflite_runtime, tensorflow); ModelError names what to install if none."""
    preferred = preferred or os.environ.get("MASKDET_RUNTIME") or None
    candidates = [c for c in RUNTIME_MODULES if preferred in (None, c[0])]
    if not candidates:
        names = ", ".join(name for name, _ in RUNTIME_MODULES)
        raise ModelError(f"unknown TFLite runtime {preferred!r}: use one of {names}")
    failures = []
    for name, module_name in candidates:
        try:
            runtime = _import_runtime(name, module_name)
        except ImportError as exc:
            failures.append(f"{name}: {exc}")
            continue
        log.debug("TFLite runtime: %s", name)
        return runtime
    raise ModelError("no TFLite runtime could be imported (" + "; ".join(failures) + "); "
                     "install ai-edge-litert (Python 3.10+, 64-bit) or tflite-runtime")


def open_interpreter(model_path, runtime=None, num_threads=None, delegates=None):
    """A ready (tensors allocated) interpreter for the model file, or ModelError saying why not."""
    runtime = runtime or find_runtime()
    model_path = os.fspath(model_path)
    if not os.path.isfile(model_path):
        raise ModelError(f"model file {model_path} does not exist: run `maskdet models` to list "
                         "the models, or fix the path")
    try:
        with open(model_path, "rb") as handle:
            header = handle.read(8)
    except OSError as exc:
        raise ModelError(f"model file {model_path} cannot be read ({exc.strerror or exc}): give "
                         "the service user read access") from exc
    if header[4:8] != b"TFL3":
        raise ModelError(f"{model_path} is not a TFLite model (no TFL3 identifier in its header)")
    kwargs = {"model_path": model_path}
    if num_threads:
        kwargs["num_threads"] = int(num_threads)
    if delegates:
        kwargs["experimental_delegates"] = list(delegates)
    try:
        with native_stderr_filtered():
            interpreter = runtime.interpreter_class(**kwargs)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{model_path} cannot be loaded by {runtime.name}: {exc}") from exc
    return interpreter


_FD2_LOCK = threading.Lock()  # file descriptor 2 is the whole process's: one capture at a time
NATIVE_INFO_PREFIX = "INFO: "


def replay_native_lines(text, stream=None):
    """Route what native code printed: `INFO: ` lines (such as TFLite's `INFO: Created
    TensorFlow Lite XNNPACK delegate for CPU.`) are logged at DEBUG, every other line is written
    to `stream` (sys.stderr) unchanged."""
    stream = stream or sys.stderr
    for line in text.splitlines(keepends=True):
        if line.startswith(NATIVE_INFO_PREFIX):
            log.debug("TFLite: %s", line[len(NATIVE_INFO_PREFIX):].rstrip())
        elif stream is not None:
            stream.write(line)
    _flush(stream)


def _flush(stream):
    """Flush a stream that may be absent (sys.stderr is None when the process has no stderr)."""
    if stream is not None:
        stream.flush()


def _start_capture():
    """Point file descriptor 2 at a new temporary file: (saved descriptor, file), or None when
    that cannot be done (no descriptor 2, no temporary space): then nothing is captured."""
    try:
        capture = tempfile.TemporaryFile()
    except OSError:
        return None
    try:
        saved = os.dup(2)
    except OSError:
        capture.close()
        return None
    os.dup2(capture.fileno(), 2)
    return saved, capture


@contextlib.contextmanager
def native_stderr_filtered():
    """Capture file descriptor 2 for the block (C++ code such as the TFLite runtime writes there
    directly, past sys.stderr), then replay it through `replay_native_lines`.

    If the process dies inside the block (a native crash), what was captured is lost; the block
    only wraps the creation of an interpreter and its allocate_tensors()."""
    with _FD2_LOCK:
        _flush(sys.stderr)
        started = _start_capture()
        if started is None:
            yield
            return
        saved, capture = started
        try:
            yield
        finally:
            _flush(sys.stderr)  # what Python itself wrote meanwhile is captured too, and replayed
            os.dup2(saved, 2)
            os.close(saved)
            with capture:
                capture.seek(0)
                replay_native_lines(capture.read().decode("utf-8", "replace"))
