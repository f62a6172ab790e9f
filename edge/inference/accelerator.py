"""The Edge TPU: the CPU twin of a compiled model, and falling back between them.

An `_edgetpu.tflite` model is paired with its CPU twin (the same name without `_edgetpu`). The
Edge TPU itself runs in a worker process (`edgetpu_worker.py`): libedgetpu can crash, abort or
hang, and must not take the frame loop with it. If the delegate cannot be loaded, or the worker
crashes, aborts, hangs or fails while running, inference goes on in-process with the twin at
once (the inference in progress is run again there), `placement` says `cpu` and why, and the
Edge TPU is retried in the background; `require` makes the fallback an AcceleratorError.
"""
import logging
import os
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from edge.errors import AcceleratorError, ModelError
from edge.inference.edgetpu_worker import CHECKLIST, EdgeTpuHosts, TpuFailure, shared_hosts
from edge.inference.runtime import find_runtime, open_interpreter
from edge.settings import in_range, one_of, setting

log = logging.getLogger(__name__)

EDGETPU_SUFFIX = "_edgetpu.tflite"
# Failures whose message already says what to do; the others get CHECKLIST when required.
SELF_EXPLAINED = ("crash", "abort", "killed", "exit", "hang", "error", "model")


ACCELERATOR_MODES = ("auto", "cpu", "edgetpu")


@dataclass(frozen=True)
class AcceleratorSettings:
    """Where the models run: the Edge TPU when asked and present, else the CPU, on how many threads."""

    mode: str = setting("auto", "auto (the Edge TPU when an _edgetpu.tflite model lies beside the "
                        "CPU model), cpu or edgetpu", one_of(*ACCELERATOR_MODES))
    device: Optional[str] = setting(None, "Edge TPU device: usb, usb:N, pci:N; empty: any")
    require: bool = setting(False, "fail instead of falling back to the CPU when the Edge TPU "
                            "is missing or fails")
    threads: int = setting(2, "CPU inference threads", in_range(1, 16))


@dataclass(frozen=True)
class Placement:
    """Where a model runs now (`edgetpu` / `cpu`) and, after a fallback, why not on the Edge TPU."""

    accelerator: str = "cpu"
    reason: Optional[str] = None


CPU = Placement()


def is_edgetpu_model(path):
    """True for a model compiled by edgetpu_compiler (by its file name)."""
    return os.fspath(path).endswith(EDGETPU_SUFFIX)


def cpu_twin(path):
    """`x_edgetpu.tflite` -> `x.tflite`."""
    path = os.fspath(path)
    return path[: -len(EDGETPU_SUFFIX)] + ".tflite" if is_edgetpu_model(path) else path


def edgetpu_twin(path):
    """`x.tflite` -> `x_edgetpu.tflite`."""
    path = os.fspath(path)
    return path if is_edgetpu_model(path) else path[: -len(".tflite")] + EDGETPU_SUFFIX


def _same_tensors(a, b):
    """True when two lists of tensor details agree in count, shapes and dtypes."""
    return len(a) == len(b) and all(
        list(x["shape"]) == list(y["shape"]) and np.dtype(x["dtype"]) == np.dtype(y["dtype"])
        for x, y in zip(a, b))


class AcceleratedModel:
    """An interpreter that runs on the Edge TPU when it can and on the CPU twin otherwise.

    It offers the interpreter methods the detectors and classifier use (get_input_details,
    get_output_details, set_tensor, get_tensor, invoke) and `placement`, `accelerator`,
    `fallback_reason`, `model_path`, `counters()`. Tensor indices stay those of the model first
    opened, mapped by position to the other one.

    On the Edge TPU the model runs in the worker of `hosts` (an `EdgeTpuHosts`; default: the one
    of an enclosing `EdgeTpuHosts.shared()` block, else a private one), shared with the other
    models on the same device. With mode `cpu`, or `auto` without an `_edgetpu` twin, no worker
    process is started.
    """

    def __init__(self, model_path, settings=AcceleratorSettings(), runtime=None, hosts=None,
                 clock=time.monotonic):
        if settings.mode not in ACCELERATOR_MODES:
            raise ModelError(f"accelerator must be {', '.join(ACCELERATOR_MODES)}, not {settings.mode!r}")
        self.runtime = runtime or find_runtime()
        self.num_threads = settings.threads
        self.require_accelerator = settings.require
        self.cpu_path = cpu_twin(model_path)
        self.tpu_path = edgetpu_twin(model_path)
        self._clock = clock
        self._accelerator, self._reason = "cpu", None
        self._cpu = None                  # the CPU twin's interpreter, opened on first need
        self._host = self._key = self._generation = self._own_hosts = None
        self._tpu_details = None          # (inputs, outputs) as the worker reported them
        self._public = None               # (input indices, output indices) shown to callers
        self._fallbacks = self._recoveries = 0
        self._cpu_seconds, self._cpu_since = 0.0, None
        want_tpu = settings.mode == "edgetpu" or (settings.mode == "auto" and
                                                  os.path.isfile(self.tpu_path))
        if want_tpu:
            self._start_on_tpu(settings.device, hosts)
        else:
            self._use_cpu()

    # ---- where it runs

    @property
    def placement(self):
        """Where this model runs now, and why not on the Edge TPU after a fallback. When the
        shared worker died under another model, this says `cpu` already (the next invoke runs
        there)."""
        if self._accelerator == "edgetpu" and not self._host.serving(self._key, self._generation) \
                and self._host.details(self._key) is None:
            return Placement("cpu", str(self._host.why_not(self._key)))
        return Placement(self._accelerator, self._reason)

    @property
    def accelerator(self):
        """`edgetpu` or `cpu`, now."""
        return self.placement.accelerator

    @property
    def fallback_reason(self):
        """Why not on the Edge TPU now (None on the Edge TPU, or when it was not asked for)."""
        return self.placement.reason

    @property
    def model_path(self):
        """The model file running now: the `_edgetpu` build or its CPU twin."""
        return self.tpu_path if self.accelerator == "edgetpu" else self.cpu_path

    def counters(self):
        """What the daemon reports: `accelerator`, `fallbacks` (times this model left the Edge
        TPU, at start included), `recoveries` (times it went back), `cpu_seconds` (on the CPU
        twin while the Edge TPU was wanted), `tpu_restarts` (worker processes started after the
        first for this device, tries that failed included) and `worker_pid`."""
        host = self._host.counters() if self._host is not None else {}
        on_cpu = self._clock() - self._cpu_since if self._cpu_since is not None else 0.0
        return {"accelerator": self.accelerator, "fallbacks": self._fallbacks,
                "recoveries": self._recoveries,
                "cpu_seconds": round(self._cpu_seconds + on_cpu, 3),
                "tpu_restarts": host.get("tpu_restarts", 0), "worker_pid": host.get("worker_pid")}

    def close(self):
        """Stop the worker when this model owns it (no `hosts` given, none shared)."""
        if self._own_hosts is not None:
            self._own_hosts.close()

    # ---- switching

    def _start_on_tpu(self, device, hosts):
        """Join the device's worker (starting it if need be); the CPU twin when it fails."""
        if not os.path.isfile(self.tpu_path):
            self._fall_back(AcceleratorError(f"there is no Edge TPU model {self.tpu_path}: "
                                             "compile one with `maskdet-convert compile`"),
                            at_start=True)
            return
        hosts = hosts or shared_hosts()
        if hosts is None:
            hosts = self._own_hosts = EdgeTpuHosts()
        hosts.track(self)
        self._host = hosts.host(device, self.runtime.name)
        self._key = self._host.register(self.tpu_path, self.num_threads)
        if self._to_tpu():
            log.info("running %s on the Edge TPU (worker pid %s)", self.tpu_path,
                     self._host.counters()["worker_pid"])
        else:
            self._fall_back(self._host.why_not(self._key), at_start=True)

    def _set_public(self, inputs, outputs):
        """The indices callers see: those of the model first opened."""
        self._public = ([d["index"] for d in inputs], [d["index"] for d in outputs])
        self._in_pos = {index: i for i, index in enumerate(self._public[0])}
        self._out_pos = {index: i for i, index in enumerate(self._public[1])}
        self._inputs = [np.zeros(d["shape"], d["dtype"]) for d in inputs]
        self._outputs = [np.zeros(d["shape"], d["dtype"]) for d in outputs]

    def _check_twin(self, inputs, outputs):
        """ModelError unless the tensors agree with those of the model first opened."""
        first = self._tpu_details if self._tpu_details is not None else self._cpu_details
        if not (_same_tensors(first[0], inputs) and _same_tensors(first[1], outputs)):
            raise ModelError(f"{self.cpu_path} and {self.tpu_path} are not twins: their input or "
                             "output tensors differ; compile the Edge TPU model from this CPU model")

    def _to_tpu(self):
        """Run on the host's current worker if it serves this model; True when it does."""
        details = self._host.details(self._key)
        if details is None:
            return False
        if self._public is None:
            self._set_public(*details)
        else:
            self._check_twin(*details)
        self._tpu_details = details
        self._generation = self._host.generation
        if self._cpu_since is not None:
            self._cpu_seconds += self._clock() - self._cpu_since
            self._cpu_since = None
        self._accelerator, self._reason = "edgetpu", None
        return True

    def _use_cpu(self):
        """Open the CPU twin (once) and give it the inputs set so far."""
        if self._cpu is None:
            interpreter = open_interpreter(self.cpu_path, self.runtime, self.num_threads)
            self._cpu_details = (interpreter.get_input_details(), interpreter.get_output_details())
            if self._public is None:
                self._set_public(*self._cpu_details)
            else:
                self._check_twin(*self._cpu_details)
            self._cpu = interpreter
            self._cpu_in = [d["index"] for d in self._cpu_details[0]]
            self._cpu_out = [d["index"] for d in self._cpu_details[1]]
        for index, value in zip(self._cpu_in, self._inputs):
            self._cpu.set_tensor(index, value)

    def _fall_back(self, cause, at_start=False):
        """Go on with the CPU twin (or raise when the Edge TPU is required)."""
        if self.require_accelerator:
            self.close()
            advice = "" if getattr(cause, "kind", None) in SELF_EXPLAINED else f"; {CHECKLIST}"
            raise AcceleratorError(f"the Edge TPU is required (require_accelerator) but "
                                   f"{cause}{advice}") from cause
        if not os.path.isfile(self.cpu_path):
            raise AcceleratorError(f"{cause}, and the CPU twin {self.cpu_path} is missing") from cause
        self._use_cpu()
        self._accelerator, self._reason = "cpu", str(cause)
        self._fallbacks += 1
        self._cpu_since = self._clock()
        log.warning("Edge TPU unavailable (%s); %s on the CPU with %s", cause,
                    "running" if at_start else "going on", self.cpu_path)

    def _try_back_to_tpu(self):
        """On the CPU while the Edge TPU is wanted: move the retry on (never blocks) and go back
        to the Edge TPU when its new worker serves this model."""
        self._host.poll()
        if self._host.details(self._key) is not None and self._to_tpu():
            self._recoveries += 1
            log.warning("%s runs on the Edge TPU again", self.tpu_path)

    def _invoke_on_tpu(self):
        """One inference in the worker; False (and on the CPU now) when the worker failed."""
        if not self._host.serving(self._key, self._generation):
            if self._host.details(self._key) is None:  # the worker died under another model
                self._fall_back(self._host.why_not(self._key))
                return False
            self._to_tpu()  # it was replaced (and came up) meanwhile
        try:
            self._outputs = self._host.invoke(self._key, self._inputs)
        except TpuFailure as failure:
            self._fall_back(failure)
            return False
        return True

    # ---- the interpreter interface

    def _details(self, which):
        """Details of the model running now, with the indices callers know."""
        if self._accelerator == "edgetpu":
            details = self._tpu_details[which]
        else:
            details = self._cpu_details[which]
        return [dict(d, index=index) for d, index in zip(details, self._public[which])]

    def get_input_details(self):
        """Input tensor details (indices of the model first opened)."""
        return self._details(0)

    def get_output_details(self):
        """Output tensor details (indices of the model first opened)."""
        return self._details(1)

    def set_tensor(self, index, value):
        """Set an input tensor (kept, so that a fallback can run the same inference again)."""
        if index not in self._in_pos:
            raise ValueError(f"tensor {index} is not an input of {self.model_path}")
        position = self._in_pos[index]
        self._inputs[position] = np.array(value, copy=True)
        if self._accelerator == "cpu":
            self._cpu.set_tensor(self._cpu_in[position], self._inputs[position])

    def get_tensor(self, index):
        """Read an output (or input) tensor."""
        if index in self._out_pos:
            position = self._out_pos[index]
            if self._accelerator == "edgetpu":
                return self._outputs[position]
            return self._cpu.get_tensor(self._cpu_out[position])
        if index in self._in_pos:
            return self._inputs[self._in_pos[index]].copy()
        raise ValueError(f"tensor {index} is neither an input nor an output of {self.model_path}")

    def invoke(self):
        """Run the model: in the Edge TPU worker, or on the CPU twin. When the worker fails the
        same inputs run on the CPU at once; on the CPU, a due retry is moved on first."""
        if self._host is not None:
            if self._accelerator == "cpu" and self._host.state != "closed":
                self._try_back_to_tpu()
            if self._accelerator == "edgetpu" and self._invoke_on_tpu():
                return
        self._cpu.invoke()
