"""The Edge TPU: its delegate, the CPU twin of a compiled model, and falling back between them.

An `_edgetpu.tflite` model is paired with its CPU twin (the same name without `_edgetpu`). If the
delegate cannot be loaded, or the device fails while running, inference goes on with the twin,
`accelerator` says `cpu` and a warning names the cause; `require_accelerator` makes that an error.
"""
import ctypes
import logging
import os
import platform
from dataclasses import dataclass
from typing import Optional

import numpy as np

from edge.errors import AcceleratorError, ModelError
from edge.inference.runtime import find_runtime, open_interpreter
from edge.settings import in_range, one_of, setting

log = logging.getLogger(__name__)

EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib",
                   "Windows": "edgetpu.dll"}.get(platform.system(), "libedgetpu.so.1")
EDGETPU_SUFFIX = "_edgetpu.tflite"
CHECKLIST = ("check that the Coral is plugged in (a USB 3 port, or `lspci` shows it for PCIe), "
             "that libedgetpu1-std is installed, that the udev rules are in place and the service "
             "user is in the plugdev group (USB), or that the gasket / apex driver is loaded and "
             "/dev/apex_0 is readable (PCIe)")


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


def load_edgetpu_delegate(runtime, device=None):
    """The Edge TPU delegate for `device` (`usb`, `usb:N`, `pci:N` or None for any)."""
    options = {"device": device} if device else {}
    try:
        # Opening the library first gives the plain cause without the runtime's noisy cleanup of
        # a half-made delegate object.
        ctypes.CDLL(EDGETPU_LIBRARY)
        return runtime.load_delegate(EDGETPU_LIBRARY, options)
    except (OSError, ValueError, RuntimeError) as exc:
        where = f" device {device!r}" if device else ""
        raise AcceleratorError(f"cannot load the Edge TPU delegate{where} ({EDGETPU_LIBRARY}: "
                               f"{exc})") from exc


class AcceleratedModel:
    """An interpreter that runs on the Edge TPU when it can and on the CPU twin otherwise.

    It offers the interpreter methods the detectors and classifier use (get_input_details,
    get_output_details, set_tensor, get_tensor, invoke). Tensor indices stay those of the model
    first opened, mapped by position to the twin after a fallback.
    """

    def __init__(self, model_path, settings=AcceleratorSettings(), runtime=None,
                 delegate_loader=load_edgetpu_delegate):
        if settings.mode not in ACCELERATOR_MODES:
            raise ModelError(f"accelerator must be {', '.join(ACCELERATOR_MODES)}, not {settings.mode!r}")
        self.runtime = runtime or find_runtime()
        self.num_threads = settings.threads
        self.require_accelerator = settings.require
        self.fallback_reason = None
        self._cpu_path = cpu_twin(model_path)
        tpu_path = edgetpu_twin(model_path)
        want_tpu = settings.mode == "edgetpu" or (settings.mode == "auto" and os.path.isfile(tpu_path))
        if want_tpu:
            self._open_tpu(tpu_path, settings.device, delegate_loader)
        else:
            self._open_cpu()
        self._input_order = [d["index"] for d in self._interpreter.get_input_details()]
        self._output_order = [d["index"] for d in self._interpreter.get_output_details()]
        self._index_map = {}
        self._inputs = {}

    @property
    def placement(self):
        """Where this model runs now, and why not on the Edge TPU after a fallback."""
        return Placement(self.accelerator, self.fallback_reason)

    def _open_tpu(self, tpu_path, device, delegate_loader):
        try:
            if not os.path.isfile(tpu_path):
                raise AcceleratorError(f"there is no Edge TPU model {tpu_path}: compile one with "
                                       "`maskdet-convert compile`")
            delegate = delegate_loader(self.runtime, device)
            self._interpreter = open_interpreter(tpu_path, self.runtime, delegates=[delegate])
            self.accelerator, self.model_path = "edgetpu", tpu_path
            log.info("running %s on the Edge TPU", tpu_path)
        except (AcceleratorError, ModelError) as exc:
            self._fall_back(exc, at_start=True)

    def _open_cpu(self):
        self._interpreter = open_interpreter(self._cpu_path, self.runtime, self.num_threads)
        self.accelerator, self.model_path = "cpu", self._cpu_path

    def _fall_back(self, cause, at_start=False):
        if self.require_accelerator:
            raise AcceleratorError(f"the Edge TPU is required (require_accelerator) but {cause}; "
                                   f"{CHECKLIST}") from cause
        if not os.path.isfile(self._cpu_path):
            raise AcceleratorError(f"{cause}, and the CPU twin {self._cpu_path} is missing") from cause
        self.fallback_reason = str(cause)
        log.warning("Edge TPU unavailable (%s); %s on the CPU with %s", cause,
                    "running" if at_start else "going on", self._cpu_path)
        self._open_cpu()

    def _switch_to_cpu(self, cause):
        self._fall_back(AcceleratorError(f"the Edge TPU failed while running: {cause}"))
        inputs = [d["index"] for d in self._interpreter.get_input_details()]
        outputs = [d["index"] for d in self._interpreter.get_output_details()]
        self._index_map = dict(zip(self._input_order, inputs))
        self._index_map.update(zip(self._output_order, outputs))

    def _details(self, details, order):
        by_index = {self._index_map.get(i, i): i for i in order}
        return [dict(d, index=by_index.get(d["index"], d["index"])) for d in details]

    def get_input_details(self):
        """Input tensor details (indices of the model first opened)."""
        return self._details(self._interpreter.get_input_details(), self._input_order)

    def get_output_details(self):
        """Output tensor details (indices of the model first opened)."""
        return self._details(self._interpreter.get_output_details(), self._output_order)

    def set_tensor(self, index, value):
        """Set an input tensor."""
        self._inputs[index] = value
        self._interpreter.set_tensor(self._index_map.get(index, index), value)

    def get_tensor(self, index):
        """Read an output tensor."""
        return self._interpreter.get_tensor(self._index_map.get(index, index))

    def invoke(self):
        """Run the model; on an Edge TPU failure switch to the CPU twin and run again."""
        try:
            self._interpreter.invoke()
        except RuntimeError as exc:
            if self.accelerator != "edgetpu":
                raise
            self._switch_to_cpu(exc)
            for index, value in self._inputs.items():
                self._interpreter.set_tensor(self._index_map.get(index, index), np.asarray(value))
            self._interpreter.invoke()
