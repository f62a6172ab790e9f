"""The Edge TPU worker process itself (the child that `edgetpu_worker.TpuWorker` starts): it
loads the delegate, opens each model with one probe inference, and answers one request at a time
over its pipe. Everything here runs in the child; a crash here costs the child, never maskdet."""
import logging
import multiprocessing.connection
import os
import signal
import sys
import time

import numpy as np

from edge.errors import AcceleratorError, ModelError
from edge.inference.edgetpu_worker import FAULT_AFTER_ENV, FAULT_ENV, TpuFailure, edgetpu_library
from edge.inference.runtime import find_runtime, open_interpreter

log = logging.getLogger(__name__)


def load_edgetpu_delegate(runtime, device=None, library=None):
    """The Edge TPU delegate for `device` (`usb`, `usb:N`, `pci:N` or None for any), from
    `library` (default: `edgetpu_library()`); AcceleratorError when it cannot be loaded.

    Runs in the worker process: a mismatched libedgetpu crashes right here."""
    import ctypes

    library = library or edgetpu_library()
    options = {"device": device} if device else {}
    where = f" device {device!r}" if device else ""
    try:
        # Opening the library first gives the plain cause without the runtime's noisy cleanup of
        # a half-made delegate object.
        ctypes.CDLL(library)
    except OSError as exc:
        raise TpuFailure(f"cannot load the Edge TPU delegate{where} ({library}: {_one_line(exc)})",
                         "missing") from exc
    try:
        return runtime.load_delegate(library, options)
    except (OSError, ValueError, RuntimeError) as exc:
        raise AcceleratorError(f"cannot load the Edge TPU delegate{where} ({library}: "
                               f"{_one_line(exc)})") from exc


def _one_line(exc):
    """An exception's message on one line (the runtime appends what the library reported)."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


class FaultHook:
    """A fault the worker injects into its own invokes (tests and diagnostics only), from
    `$MASKDET_STAND_IN_FAULT` (segv | abort | hang | error) after `$MASKDET_STAND_IN_FAULT_AFTER`
    invokes. Without the variable it does nothing."""

    KINDS = ("segv", "abort", "hang", "error")

    def __init__(self, kind=None, after=0):
        if kind not in (None,) + self.KINDS:
            raise ValueError(f"{FAULT_ENV} must be one of {', '.join(self.KINDS)}, not {kind!r}")
        self.kind = kind
        self.after = after
        self.invokes = 0

    @classmethod
    def from_environment(cls):
        """The hook the environment asks for (none when `$MASKDET_STAND_IN_FAULT` is unset)."""
        kind = os.environ.get(FAULT_ENV) or None
        return cls(kind, int(os.environ.get(FAULT_AFTER_ENV) or 0)) if kind else cls()

    def before_invoke(self):
        """Count an invoke; past the first `after`, fail as asked."""
        if self.kind is None:
            return
        self.invokes += 1
        if self.invokes <= self.after:
            return
        if self.kind == "segv":
            signal.raise_signal(signal.SIGSEGV)
        elif self.kind == "abort":
            os.abort()
        elif self.kind == "hang":
            while True:
                time.sleep(3600)
        raise RuntimeError("Failed to invoke: stand-in fault (as libedgetpu reports a USB "
                           "transfer error)")


class _LoadedModel:
    """A model opened in the worker: its interpreter and tensor indices in order."""

    def __init__(self, interpreter):
        self.interpreter = interpreter
        self.inputs = interpreter.get_input_details()
        self.outputs = interpreter.get_output_details()

    def run(self, values):
        """Set the inputs (by position), invoke, return the outputs (by position)."""
        for detail, value in zip(self.inputs, values):
            self.interpreter.set_tensor(detail["index"], value)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(d["index"]) for d in self.outputs]


def open_probed(runtime, path, device, library, threads=None):
    """Load a delegate, open `path` with it (`threads` for the ops left on the CPU) and run one
    inference on zeros (the probe)."""
    delegate = load_edgetpu_delegate(runtime, device, library)
    model = _LoadedModel(open_interpreter(path, runtime, threads, delegates=[delegate]))
    try:
        model.run([np.zeros(d["shape"], d["dtype"]) for d in model.inputs])
    except RuntimeError as exc:
        raise AcceleratorError(f"the Edge TPU failed its first inference of {path}: {exc}") from exc
    return model


def _answer_open(models, runtime_name, device, library, key, path, threads):
    """The reply to `("open", key, path, threads)`."""
    try:
        runtime = find_runtime(runtime_name)
        models[key] = open_probed(runtime, path, device, library, threads)
    except AcceleratorError as exc:
        return (getattr(exc, "kind", "unavailable"), key, str(exc))
    except ModelError as exc:
        return ("model", key, str(exc))
    except Exception as exc:  # whatever a runtime raises for a model it cannot run
        return ("model", key, f"{path} cannot run on the Edge TPU ({type(exc).__name__}: {exc})")
    return ("ready", key, models[key].inputs, models[key].outputs)


def _answer_invoke(models, fault, key, values):
    """The reply to `("invoke", key, inputs)`."""
    try:
        fault.before_invoke()
        start = time.perf_counter()
        outputs = models[key].run(values)
        return ("ok", outputs, time.perf_counter() - start)
    except Exception as exc:
        return ("error", f"{type(exc).__name__}: {exc}")


def serve(conn, runtime_name, device, library, fault=None):
    """The worker's loop: answer `open`, `invoke` and `close` requests until `close` or until
    the parent is gone."""
    fault = fault or FaultHook.from_environment()
    models = {}
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request[0] == "close":
            return
        if request[0] == "open":
            reply = _answer_open(models, runtime_name, device, library, *request[1:])
        elif request[0] == "invoke":
            reply = _answer_invoke(models, fault, *request[1:])
        elif request[0] == "ping":  # the transport alone (a health check, and its cost)
            reply = ("pong",) + tuple(request[1:])
        else:
            reply = ("error", f"unknown request {request[0]!r}")
        try:
            conn.send(reply)
        except OSError:  # the parent is gone
            return


def child_main(argv=None):
    """Entry point of the worker process: `FD RUNTIME DEVICE LIBRARY` (DEVICE may be empty).

    Ctrl-C reaches the whole process group: the worker ignores it and the parent stops it."""
    fd, runtime_name, device, library = (sys.argv[1:] if argv is None else argv)[:4]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING)
    serve(multiprocessing.connection.Connection(int(fd)), runtime_name, device or None, library)


