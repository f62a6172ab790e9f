"""`maskdet doctor`: what an installer runs on the Pi to find out whether everything the service
needs is there, each finding with what to do about it.

One line per check, as it completes:

    ok    runtime: ai_edge_litert 2.3.0
    warn  edgetpu device: no Edge TPU found (...); fix: plug the USB Accelerator into ...
    FAIL  broker: localhost:1883: connection refused ...; fix: start the broker, or fix ...

or, with `--json`, one JSON object per check and line: {"check", "status" (ok / warn / fail),
"detail", "fix" (null when ok), "data" (when there are values for scripts)}.

Exit status: 0 when no check FAILs (warnings allowed: a warning is something that works but is
not as it should be, or that cannot be told on this machine), 1 when any check FAILs. A missing
or invalid config is itself a failing check, not an error: the checks that need no config still
run. Nothing here stops the doctor: the Edge TPU is probed in a child process (a crash, abort or
hang of libedgetpu there is a finding), and every slow check (the probe, each camera, the broker)
has a deadline.

The checks, in order, and the module that holds each (one function per check, each returning a
`Finding` of `findings.py`):

    config_checks.py    the config (strict schema, the start checks that need no hardware)
    runtime_checks.py   the TFLite runtime; libedgetpu's package and library; whether that
                        (runtime, libedgetpu) pair is known to work (the table: `pairs.py`)
    device_checks.py    Edge TPU devices (USB ids in sysfs, /dev/apex_0); the udev rule; the
                        service user's groups
    runtime_checks.py   the delegate probe, in a child process
    model_checks.py     the classifier and detector files (sha256, `_edgetpu` builds)
    camera_checks.py    each camera (opens, first frame)
    gpio_checks.py      the GPIO pins
    broker_checks.py    the broker (TLS, login)
    storage_checks.py   the outbox folder; free disk
    health_checks.py    CPU temperature; throttling and under-voltage (edge/service/health.py)

How much the Edge TPU matters (required / wanted / unused) is `edgetpu_want.py`; the installed
service's user, state folder and unit environment are `installed_service.py`.
"""
import contextlib
import json
import os
import sys

from edge.doctor.broker_checks import check_broker
from edge.doctor.camera_checks import check_camera
from edge.doctor.config_checks import check_config
from edge.doctor.device_checks import check_devices, check_groups, check_udev_rules
from edge.doctor.edgetpu_want import INSTALL_CORAL, tpu_want, when_missing
from edge.doctor.findings import FAIL, OK, WARN, Finding, one_line
from edge.doctor.gpio_checks import check_gpio
from edge.doctor.health_checks import check_temperature, check_throttling
from edge.doctor.installed_service import SERVICE_USER, STATE_DIR, service_environment
from edge.doctor.model_checks import check_classifier_model, check_detector_model
from edge.doctor.runtime_checks import (Libedgetpu, check_libedgetpu, check_pair, check_probe,
                                        check_runtime, find_library, installed_packages)
from edge.doctor.storage_checks import check_disk, check_outbox

__all__ = ["Finding", "run_doctor", "OK", "WARN", "FAIL"]

DEFAULT_TIMEOUT_S = 10.0


class Report:
    """Writes each finding as it comes (text or JSON lines) and remembers the statuses."""

    def __init__(self, out, as_json):
        self.out = out
        self.as_json = as_json
        self.findings = []

    def add(self, finding):
        self.findings.append(finding)
        text = json.dumps(finding.as_dict()) if self.as_json else finding.line()
        self.out.write(text + "\n")
        self.out.flush()
        return finding

    def status(self):
        """The exit status: 1 when anything FAILed, else 0."""
        return 1 if any(f.status == FAIL for f in self.findings) else 0

    def summary(self):
        counts = {s: sum(f.status == s for f in self.findings) for s in (OK, WARN, FAIL)}
        verdict = "all is well" if not counts[FAIL] and not counts[WARN] else \
            "nothing fails" if not counts[FAIL] else "fix what FAILs above"
        return f"doctor: {counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} FAIL: {verdict}"


def _guarded(report, name, check, *args, **kwargs):
    """Run one check; a bug in it becomes a FAIL line, never a traceback that ends the report."""
    try:
        result = check(*args, **kwargs)
    except Exception as exc:  # a safety net: the doctor reports, it does not crash
        report.add(Finding(name, FAIL, f"the check itself failed ({type(exc).__name__}: "
                           f"{one_line(exc)})", "report this as a maskdet bug"))
        return None
    if isinstance(result, tuple):
        report.add(result[0])
        return result
    report.add(result)
    return result


SERVICE_VARIABLES = ("MASKDET_MODELS", "MASKDET_CACHE")


@contextlib.contextmanager
def _as_the_service(environ, root):
    """Within the block, MASKDET_MODELS and MASKDET_CACHE come from the installed unit when the
    shell has none (the unit points at /opt/maskdet/models and /var/cache/maskdet; a shell would
    look beside the package), so that the doctor checks the files the service uses. Yields what
    was taken, in words; `environ` is as it was afterwards."""
    unit = service_environment(root)
    taken, before = [], {}
    for name in SERVICE_VARIABLES:
        if not environ.get(name) and name in unit:
            before[name] = environ.get(name)
            environ[name] = unit[name][0]
            taken.append(f"{name}={unit[name][0]} from {unit[name][1]}")
    try:
        yield ", ".join(taken)
    finally:
        for name, value in before.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value


def _model_paths(config):
    """The CPU model files the config runs (for how much it wants the Edge TPU)."""
    from edge.errors import MaskdetError
    from edge.inference.detectors import default_model_key
    from edge.inference.fetch import resolve
    from edge.inference.model_meta import load_classifier_meta
    from edge.paths import default_classifier

    paths = []
    try:
        paths.append(load_classifier_meta(config.classifier.model or default_classifier()).model_path)
    except MaskdetError:
        pass
    try:
        paths.append(resolve(config.detector.model or default_model_key(config.detector) or ""))
    except MaskdetError:
        pass
    return paths


def _fallback_config():
    """The defaults, for the checks that can go on when the config does not load."""
    from edge.config.schema import CameraConfig, Config, SourceConfig

    return Config(cameras=[CameraConfig("none", SourceConfig("folder", path="/nonexistent"))])


def run_doctor(config_path, out=None, as_json=False, timeout=DEFAULT_TIMEOUT_S, root="/",
               user=SERVICE_USER, environ=None):
    """Check everything and write one line per check to `out` (stdout); returns the exit status
    (0: nothing FAILs, 1: something does). `root` stands for `/` where system files are read
    (sysfs, /dev, udev rules, /etc/group), `user` is the service user, `timeout` the deadline of
    each slow check (the probe gets twice as long: it starts a process and loads a runtime)."""
    out = out or sys.stdout
    environ = os.environ if environ is None else environ
    report = Report(out, as_json)
    try:
        with _as_the_service(environ, root) as taken:
            return _run(report, config_path, as_json, timeout, root, user, environ, taken)
    except BrokenPipeError:  # `maskdet doctor | head`: the reader left; no traceback for that
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return report.status()


def _run(report, config_path, as_json, timeout, root, user, environ, taken):
    """The checks, in order (see run_doctor); `taken` says what came from the service's unit."""
    found = _guarded(report, "config", check_config, config_path, taken)
    config = found[1] if found else None
    usable = config is not None
    config = config or _fallback_config()

    coral_present = _edgetpu_checks(report, config, usable, timeout, root, user, environ)
    _guarded(report, "classifier model", check_classifier_model, config, coral_present)
    _guarded(report, "detector model", check_detector_model, config, coral_present)
    if usable:
        _service_checks(report, config, config_path, timeout, environ)
    else:
        for name in ("cameras", "gpio", "broker", "outbox"):
            report.add(Finding(name, WARN, "not checked: the config did not load",
                               "fix the config (first line) and run the doctor again"))
    outbox = config.mqtt.outbox_path if usable else STATE_DIR
    _guarded(report, "disk", check_disk, root if outbox == ":memory:" else outbox)
    _guarded(report, "temperature", check_temperature, root)
    _guarded(report, "throttling", check_throttling, root)
    if not as_json:
        report.out.write(report.summary() + "\n")
        report.out.flush()
    return report.status()


def _edgetpu_checks(report, config, usable, timeout, root, user, environ):
    """The runtime, libedgetpu, the pair, the devices, udev rule and groups, and the probe.
    Returns whether a Coral is here (a device, or a libedgetpu package)."""
    want = tpu_want(config.accelerator, _model_paths(config))
    runtime = _guarded(report, "runtime", check_runtime, environ, root) or (None, None, None)
    runtime_name, runtime_version = runtime[1], runtime[2]
    library = find_library(environ)
    lib = _guarded(report, "libedgetpu", check_libedgetpu, want, installed_packages(), library)
    lib = lib[1] if lib else Libedgetpu()
    _guarded(report, "edgetpu pair", check_pair, want, runtime_name, runtime_version, lib)
    devices = _device_checks(report, config, usable, want, root, user)
    _probe(report, config, want, runtime_name, library, timeout)
    return bool(devices) or lib.package is not None


def _device_checks(report, config, usable, want, root, user):
    """The Edge TPU devices, the udev rule and the service user's groups; returns the devices."""
    devices = _guarded(report, "edgetpu device", check_devices, want, root)
    devices = devices[1] if devices else []
    pcie = any(d.kind == "pcie" for d in devices) or \
        str(config.accelerator.device or "").startswith("pci")
    rules = _guarded(report, "udev rule", check_udev_rules, want, pcie, root)
    needed = (rules[1] if rules and rules[1] else ["apex" if pcie else "plugdev"])
    also = _other_groups(config) if usable else []
    _guarded(report, "groups", check_groups, want, needed, user, root, also)
    return devices


def _other_groups(config):
    """The groups besides the Coral's the service user needs: video for a V4L2 or Pi camera,
    gpio for pins."""
    also = []
    if any(c.source.type == "picamera2" or str(c.source.url or "").startswith("/dev/video")
           for c in config.cameras):
        also.append("video")
    if any(getattr(config.gpio, r) is not None for r in ("green", "red", "buzzer")):
        also.append("gpio")
    return also


def _service_checks(report, config, config_path, timeout, environ):
    """What the service opens as it runs: each camera, the GPIO pins, the broker, the outbox."""
    conf_dir = os.path.dirname(os.path.abspath(config_path))
    for camera in config.cameras:
        _guarded(report, f"camera {camera.name}", check_camera, camera, timeout)
    _guarded(report, "gpio", check_gpio, config.gpio)
    _guarded(report, "broker", check_broker, config.mqtt, config.device_id, timeout,
             environ, conf_dir)
    _guarded(report, "outbox", check_outbox, config.mqtt.outbox_path)


def _probe(report, config, want, runtime_name, library, timeout):
    """The delegate probe, with the classifier's Edge TPU build when there is one (else its CPU
    model: the delegate still loads and opens the device); skipped without libedgetpu."""
    from edge.errors import MaskdetError
    from edge.inference.accelerator import edgetpu_twin
    from edge.inference.model_meta import load_classifier_meta
    from edge.paths import default_classifier

    name = "edgetpu probe"
    if library[0] is None:
        status, detail, fix = when_missing(
            want, "not probed: libedgetpu.so.1 is not installed",
            f"{INSTALL_CORAL}, then run the doctor again")
        report.add(Finding(name, status, detail, fix))
        return
    try:
        cpu = load_classifier_meta(config.classifier.model or default_classifier()).model_path
    except MaskdetError:
        cpu = None
    model = edgetpu_twin(cpu) if cpu and os.path.isfile(edgetpu_twin(cpu)) else cpu
    _guarded(report, name, check_probe, want, model,
             runtime_name, config.accelerator.device, 2 * timeout, library[0])
