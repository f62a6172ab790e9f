"""The Edge TPU's software, in the order it stacks up: the TFLite runtime maskdet uses,
libedgetpu's package and library, whether that (runtime, libedgetpu) pair is known to work
(`pairs.py`), and the delegate probe, which loads libedgetpu in a child process (the worker of
`edge.inference.edgetpu_worker`) so that a crash, abort or hang there is a finding, never felt
here."""
import ctypes.util
import importlib.metadata
import importlib.util
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Optional

from edge.doctor.edgetpu_want import INSTALL_CORAL, MISSING_STATUS, UNUSED, when_missing
from edge.doctor.findings import FAIL, OK, WARN, Finding, one_line, quiet_logging
from edge.doctor.installed_service import service_runtime
from edge.doctor.pairs import INSTALL_MATCHED, numbers, verdict

LIBRARY_NAME = "libedgetpu.so.1"
PACKAGES = ("libedgetpu1-std", "libedgetpu1-max")
RUNTIMES = (("ai_edge_litert", ("ai-edge-litert", "ai-edge-litert-nightly")),
            ("tflite_runtime", ("tflite-runtime", "tflite_runtime")),
            ("tensorflow", ("tensorflow", "tensorflow-cpu", "tensorflow-aarch64")))
PROBE_FIX = {
    "crash": "install the libedgetpu built for this runtime: " + INSTALL_CORAL,
    "abort": "a USB fault: check the cable, use a USB 3 port directly and a 3 A supply or a "
             "powered hub; replug the Coral",
    "hang": "the device is wedged: unplug and replug it (or power-cycle the Pi)",
    "killed": "run the doctor again; check `dmesg` for the out-of-memory killer",
    "exit": "read the worker's messages above",
    "model": "compile the model again with `maskdet-convert compile` (x86-64 Debian)",
}


# --------------------------------------------------------------------------- the TFLite runtime

def runtime_versions():
    """[(runtime, version or None)] of every TFLite runtime installed, in the order `maskdet`
    prefers them (nothing is imported)."""
    found = []
    for module, distributions in RUNTIMES:
        try:
            present = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            present = False
        if present:
            found.append((module, _first_version(distributions)))
    return found


def _first_version(distributions):
    """The version of the first of `distributions` that is installed, or None."""
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _version_of(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_runtime(environ=None, root="/"):
    """The TFLite runtime maskdet uses (as `find_runtime` chooses it) and its version. Returns
    (Finding, runtime name or None, version or None)."""
    from edge.errors import ModelError
    from edge.inference.runtime import find_runtime

    name = "runtime"
    preferred, where = service_runtime(environ, root)
    installed = runtime_versions()
    try:
        with quiet_logging():
            runtime = find_runtime(preferred)
    except ModelError as exc:
        return Finding(name, FAIL, one_line(exc), "pip install ai-edge-litert (64-bit, Python "
                       "3.10+) or tflite-runtime into the venv (install.sh does)"), None, None
    version = dict(installed).get(runtime.name)
    data = {"runtime": runtime.name, "version": version, "installed": dict(installed)}
    if runtime.name == "tflite_runtime" and version and version.startswith("2.14"):
        numpy_version = _version_of("numpy") or "0"
        if (numbers(numpy_version) or (0,))[0] >= 2:
            return Finding(name, FAIL, f"tflite_runtime {version} with numpy {numpy_version}: its "
                           "wheels fail with numpy 2 (SystemError creating the interpreter)",
                           "pip install 'numpy<2' into the venv", data), runtime.name, version
    chosen = f" (chosen by {where})" if where else ""
    others = [f"{n} {v or '?'}" for n, v in installed if n != runtime.name]
    also = f"; also installed: {', '.join(others)}" if others else ""
    return Finding(name, OK, f"{runtime.name} {version or '(version unknown)'}{chosen}{also}",
                   data=data), runtime.name, version


# --------------------------------------------------------------------------- libedgetpu

@dataclass(frozen=True)
class Libedgetpu:
    """What is installed: the package (std / max) and its version, and the library file the
    dynamic loader finds."""

    package: Optional[str] = None
    version: Optional[str] = None
    library: Optional[str] = None
    found_by: Optional[str] = None


def installed_packages(dpkg_query="dpkg-query"):
    """{package: version} of the libedgetpu1 packages dpkg has installed."""
    try:
        done = subprocess.run([dpkg_query, "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\\n",
                               *PACKAGES], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return {}
    found = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2].startswith("ii"):
            found[parts[0]] = parts[1]
    return found


def find_library(environ=None, ldconfig="ldconfig"):
    """(path, how it was found) of the libedgetpu the worker would load, or (None, None):
    $MASKDET_EDGETPU_LIBRARY, a folder of $LD_LIBRARY_PATH, the loader's cache (`ldconfig -p`),
    then ctypes.util.find_library."""
    environ = os.environ if environ is None else environ
    if environ.get("MASKDET_EDGETPU_LIBRARY"):
        path = environ["MASKDET_EDGETPU_LIBRARY"]
        return (path, "$MASKDET_EDGETPU_LIBRARY") if os.path.isfile(path) else (None, None)
    for folder in filter(None, environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)):
        path = os.path.join(folder, LIBRARY_NAME)
        if os.path.isfile(path):
            return path, "$LD_LIBRARY_PATH"
    cached = _in_loader_cache(ldconfig)
    if cached is not None:
        return cached, "ldconfig -p"
    name = ctypes.util.find_library("edgetpu")
    return (name, "ctypes.util.find_library") if name else (None, None)


def _in_loader_cache(ldconfig):
    """The path of libedgetpu.so.1 in the dynamic loader's cache (`ldconfig -p`), or None."""
    try:
        done = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=20,
                              check=False)
        for line in done.stdout.splitlines():
            if line.strip().startswith(LIBRARY_NAME + " ") and "=>" in line:
                return line.split("=>", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def check_libedgetpu(want, packages, library):
    """libedgetpu's package (std / max) and version, and the library file the loader finds.
    `packages` is `installed_packages()`, `library` `find_library()`. Returns (Finding,
    Libedgetpu)."""
    name = "libedgetpu"
    path, how = library
    package, version = next(iter(sorted(packages.items())), (None, None))
    info = Libedgetpu(package, version, path, how)
    data = {"package": package, "version": version, "library": path}
    clock = {"libedgetpu1-std": "std clock", "libedgetpu1-max": "max clock: runs hot"}.get(package)
    if package and path:
        return Finding(name, OK, f"{package} {version} ({clock}); {path} (found by {how})",
                       data=data), info
    if package:
        return Finding(name, FAIL, f"{package} {version} is installed but the dynamic loader "
                       f"does not find {LIBRARY_NAME}", f"sudo ldconfig, or reinstall: "
                       f"{INSTALL_CORAL}", data), info
    if path:
        status = OK if want == UNUSED else WARN
        return Finding(name, status, f"{path} (found by {how}) is not from a libedgetpu1-std / "
                       "-max package: the TensorFlow version it was built against is unknown",
                       f"install the packaged build that matches the runtime: {INSTALL_CORAL}",
                       data), info
    status, detail, fix = when_missing(
        want, f"not installed (no {' / '.join(PACKAGES)} package, no {LIBRARY_NAME} on the "
        "loader's path)", f"{INSTALL_CORAL}: it installs the libedgetpu built for the venv's "
        "TFLite runtime")
    return Finding(name, status, detail, fix, data), info


# --------------------------------------------------------------------------- the pair

def check_pair(want, runtime, runtime_version, lib):
    """Whether the (runtime, libedgetpu) pair is known to work (`pairs.verdict`)."""
    name = "edgetpu pair"
    if runtime is None:
        return Finding(name, WARN if want != UNUSED else OK, "no TFLite runtime: nothing to match",
                       "install a runtime first (see the runtime line)")
    if lib.version is None:
        return _unpackaged_pair(name, want, runtime, runtime_version, lib)
    found = verdict(runtime, runtime_version or "0", lib.version)
    status = found.status
    if status == FAIL and want == UNUSED:
        status = WARN  # installed but not used: it breaks the day an _edgetpu model is added
    return Finding(name, status, found.detail, found.fix,
                   {"runtime": runtime, "runtime_version": runtime_version,
                    "libedgetpu": lib.version})


def _unpackaged_pair(name, want, runtime, runtime_version, lib):
    """The pair when no libedgetpu package is installed: a bare library file, or none."""
    if lib.library and runtime == "ai_edge_litert":
        found = verdict(runtime, runtime_version or "0", "unknown")
        return Finding(name, FAIL if want != UNUSED else WARN, found.detail.replace(
            "libedgetpu unknown", f"the unpackaged {lib.library}"), found.fix)
    if lib.library:
        return Finding(name, WARN if want != UNUSED else OK, f"{runtime} {runtime_version} "
                       f"with an unpackaged {lib.library}: whether they match is unknown",
                       INSTALL_MATCHED)
    return Finding(name, OK, "no libedgetpu installed: nothing to match")


# --------------------------------------------------------------------------- the probe

def check_probe(want, model_path, runtime, device=None, timeout=20.0, library=None):
    """Load the delegate, open `model_path` on the Edge TPU and run it once, in the worker
    process of `edge.inference.edgetpu_worker` (a crash, abort or hang there is reported, never
    felt here). `library` defaults to what the worker loads ($MASKDET_EDGETPU_LIBRARY or
    libedgetpu.so.1 through the loader)."""
    name = "edgetpu probe"
    if runtime is None:
        return Finding(name, MISSING_STATUS[want], "not probed: no TFLite runtime",
                       None if want == UNUSED else "install a runtime first")
    if not model_path or not os.path.isfile(model_path):
        return Finding(name, WARN, f"not probed: no model to probe with ({model_path})",
                       "restore the classifier's files (models/)")
    details, failure, pid, seconds, loaded = _probe_in_worker(model_path, runtime, device,
                                                              timeout, library)
    data = {"model": model_path, "seconds": round(seconds, 3), "library": loaded}
    if details is not None:
        where = f" on {device}" if device else ""
        cpu_model = "" if model_path.endswith("_edgetpu.tflite") else \
            " (the CPU model: there is no Edge TPU build to run)"
        return Finding(name, OK, f"the delegate loaded in a child process (pid {pid}), opened the "
                       f"Edge TPU{where} and ran {os.path.basename(model_path)} once"
                       f"{cpu_model} ({seconds:.1f} s)", data=data)
    return _probe_failure(name, want, failure, data)


def _probe_in_worker(model_path, runtime, device, timeout, library):
    """Register `model_path` with a fresh Edge TPU worker, then close it: (its details or None,
    why not, the worker's pid, seconds taken, the library it loaded)."""
    from edge.inference.edgetpu_worker import EdgeTpuHost

    host = EdgeTpuHost(device, runtime, library, load_timeout_s=timeout, invoke_timeout_s=timeout)
    started = time.monotonic()
    try:
        with quiet_logging():
            key = host.register(model_path, 1)
            details = host.details(key)
            failure = host.why_not(key)
            pid = host.counters()["worker_pid"]
    finally:
        host.close()
    return details, failure, pid, time.monotonic() - started, host.library


def _probe_failure(name, want, failure, data):
    """The finding of a probe that did not run the model: what went wrong and what to do."""
    kind = getattr(failure, "kind", "unavailable")
    data["kind"] = kind
    detail = one_line(failure)
    if kind in ("missing", "unavailable"):
        from edge.inference.edgetpu_worker import CHECKLIST

        fix = CHECKLIST if kind == "unavailable" else \
            f"{INSTALL_CORAL}: it installs the libedgetpu built for the venv's TFLite runtime"
        status, detail, fix = when_missing(want, detail, fix)
        return Finding(name, status, detail, fix, data)
    status = WARN if want == UNUSED or kind in ("model", "killed", "exit") else FAIL
    return Finding(name, status, f"{detail} (the doctor goes on: the probe ran in a child process)",
                   PROBE_FIX.get(kind), data)
