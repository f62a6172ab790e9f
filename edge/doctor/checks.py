"""The checks of `maskdet doctor`: one small function per check, each returning a `Finding`
(its name, `ok` / `warn` / `FAIL`, what was found and, unless ok, what to do).

Every check takes what it looks at as arguments (a root folder standing for `/`, a config
section, a command, a deadline), so that the tests run each one on real inputs made for them: a
sysfs-like tree, the stand-in libedgetpu, a real mosquitto, a video file, gpiozero's mock pins.
No check raises for what it finds, nothing native runs in this process (the Edge TPU is probed
in the worker process of `edge.inference.edgetpu_worker`), and each slow check has a deadline.

How much the Edge TPU matters is the `Want` of the config: `required` (accelerator.require and
the Edge TPU in use: `run` fails without it), `wanted` (mode edgetpu, or auto with an
`_edgetpu` model beside a model: the CPU takes over without it) or `unused` (mode cpu, or auto
without an `_edgetpu` model). Something missing for the Edge TPU is then FAIL, warn or ok.
"""
import contextlib
import ctypes.util
import glob
import importlib.metadata
import importlib.util
import logging
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from edge.doctor.pairs import FAIL, INSTALL_MATCHED, OK, WARN, numbers, verdict

REQUIRED, WANTED, UNUSED = "required", "wanted", "unused"
MISSING_STATUS = {REQUIRED: FAIL, WANTED: WARN, UNUSED: OK}

SERVICE_USER = "maskdet"
LIBRARY_NAME = "libedgetpu.so.1"
PACKAGES = ("libedgetpu1-std", "libedgetpu1-max")
# USB ids of the Coral USB Accelerator: before its firmware is loaded, and after.
USB_IDS = {("1a6e", "089a"): "no firmware yet: libedgetpu loads it when it first opens the device",
           ("18d1", "9302"): "firmware loaded"}
PCI_ID = ("0x1ac1", "0x089a")  # the Coral PCIe / M.2 module
RULE_DIRS = ("etc/udev/rules.d", "lib/udev/rules.d", "usr/lib/udev/rules.d")
UNIT_DIRS = ("etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system")
DROP_IN_DIRS = tuple(f"{folder}/maskdet.service.d" for folder in UNIT_DIRS)
RUNTIMES = (("ai_edge_litert", ("ai-edge-litert", "ai-edge-litert-nightly")),
            ("tflite_runtime", ("tflite-runtime", "tflite_runtime")),
            ("tensorflow", ("tensorflow", "tensorflow-cpu", "tensorflow-aarch64")))
STATE_DIR = "/var/lib/maskdet"  # made by systemd (StateDirectory=maskdet) when the service starts
DISK_FAIL_BYTES = 50 << 20
DISK_WARN_BYTES = 500 << 20
DISK_WARN_FRACTION = 0.05
TEMPERATURE_WARN_C = 70.0
TEMPERATURE_FAIL_C = 80.0  # the Raspberry Pi firmware throttles the CPU from 80 °C (85 °C hard)
THROTTLED_FILE = "sys/devices/platform/soc/soc:firmware/get_throttled"
THROTTLE_BITS = {0: "under-voltage", 1: "ARM frequency capped", 2: "throttled",
                 3: "soft temperature limit"}
POWER_FIX = ("use the official power supply (5 V 3 A for a Pi 4, 5 V 5 A for a Pi 5) and, for a "
             "USB Coral (up to 900 mA), a powered USB hub or a powered port")
COOLING_FIX = ("cool the Pi: a heatsink and fan (the Active Cooler on a Pi 5) and free airflow; "
               "the Coral's max clock (libedgetpu1-max) adds heat")
INSTALL_CORAL = "sudo systemd/install.sh --coral (USB) or --coral=pcie"
COMPILE_HINT = ("run `maskdet-convert compile {cpu}` on an x86-64 Debian-family machine (the "
                "only place edgetpu_compiler runs) and copy {twin} beside the CPU model in {folder}")


@dataclass(frozen=True)
class Finding:
    """One line of the report: `status name: detail; fix: fix`. `data` adds machine-readable
    values (full sha256 sums, versions) to the JSON output."""

    name: str
    status: str
    detail: str
    fix: Optional[str] = None
    data: dict = field(default_factory=dict)

    def line(self):
        """`ok    name: detail` or `FAIL  name: detail; fix: what to do`."""
        text = f"{self.status:<4}  {self.name}: {self.detail}"
        return f"{text}; fix: {self.fix}" if self.fix and self.status != OK else text

    def as_dict(self):
        """The JSON object of this finding (`status` in lower case: ok, warn, fail)."""
        found = {"check": self.name, "status": self.status.lower(), "detail": self.detail,
                 "fix": self.fix if self.status != OK else None}
        return {**found, "data": self.data} if self.data else found


def one_line(text):
    return " ".join(str(text).split())


def _read(path):
    with open(path, encoding="ascii", errors="replace") as handle:
        return handle.read().strip()


def _at(root, *parts):
    return os.path.join(root, *parts)


@contextlib.contextmanager
def quiet_logging():
    """Keep the libraries' own log lines (gpiozero faults, the worker's warnings) out of the
    report while a check runs."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


# --------------------------------------------------------------------------- what is wanted

def tpu_want(accelerator, model_paths):
    """How much the config wants the Edge TPU (REQUIRED, WANTED or UNUSED): `accelerator` is its
    AcceleratorSettings, `model_paths` the CPU models it runs (an `_edgetpu` twin beside one
    makes mode auto use the Edge TPU)."""
    from edge.inference.accelerator import edgetpu_twin

    if accelerator.mode == "cpu":
        return UNUSED
    twins = any(p.endswith(".tflite") and os.path.isfile(edgetpu_twin(p)) for p in model_paths if p)
    if accelerator.mode == "auto" and not twins:
        return UNUSED
    return REQUIRED if accelerator.require else WANTED


def when_missing(want, what, fix):
    """A finding's status and fix for something the Edge TPU needs that is not there."""
    status = MISSING_STATUS[want]
    if want == UNUSED:
        return status, f"{what} (the Edge TPU is not used: the models run on the CPU)", None
    return status, what, fix


# --------------------------------------------------------------------------- the config

def check_config(path, service_note=""):
    """Load the config (strict schema) and run the start checks that need no hardware: device
    id, accelerator device name, MQTT password and TLS files. Returns (Finding, config or None):
    the other checks use the config when it loads. `service_note` says what the doctor took from
    the installed unit (MASKDET_MODELS ...), added to the finding."""
    from edge.config.checks import check_accelerator, check_mqtt, check_names
    from edge.config.schema import load_config
    from edge.errors import ConfigError

    name = "config"
    note = f" (as the service: {service_note})" if service_note else ""
    try:
        config = load_config(path)
    except ConfigError as exc:
        if not os.path.exists(path):
            return Finding(name, FAIL, f"{path} does not exist{note}", "copy "
                           f"systemd/maskdet.example.yaml to {path} and edit it (sudo "
                           "systemd/install.sh does), or give --config FILE"), None
        return Finding(name, FAIL, one_line(exc) + note, "edit the file; `maskdet check-config "
                       "FILE` names every problem"), None
    problems = []
    for check in (check_names, check_accelerator, check_mqtt):
        try:
            check(config, os.fspath(path))
        except ConfigError as exc:
            problems.append(one_line(exc))
    if problems:
        return Finding(name, FAIL, "; ".join(problems) + note, "edit the file; `maskdet "
                       "check-config FILE` runs every start check"), config
    cameras = ", ".join(c.name for c in config.cameras)
    return Finding(name, OK, f"{path} is valid (cameras {cameras}; detector {config.detector.type}; "
                   f"accelerator {config.accelerator.mode}){note}"), config


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
        if not present:
            continue
        version = None
        for distribution in distributions:
            try:
                version = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        found.append((module, version))
    return found


def service_environment(root="/"):
    """{name: (value, file)} of the `Environment=` settings of the installed maskdet.service and
    its drop-ins (a later file wins, as in systemd): what the service sees that a shell does not,
    e.g. MASKDET_MODELS, MASKDET_CACHE, and MASKDET_RUNTIME from `install.sh --coral`."""
    files = [_at(root, folder, "maskdet.service") for folder in UNIT_DIRS]
    files = [next((f for f in files if os.path.isfile(f)), None)]
    for folder in DROP_IN_DIRS:
        files += sorted(glob.glob(_at(root, folder, "*.conf")))
    found = {}
    for path in filter(None, files):
        try:
            text = _read(path)
        except OSError:
            continue
        for line in text.splitlines():
            if not line.startswith("Environment="):
                continue
            try:
                words = shlex.split(line[len("Environment="):])
            except ValueError:
                continue
            for word in words:
                if "=" in word:
                    name, value = word.split("=", 1)
                    found[name] = (value, "/" + os.path.relpath(path, root))
    return found


def service_runtime(environ=None, root="/"):
    """The runtime the service is told to use ($MASKDET_RUNTIME, else `Environment=
    MASKDET_RUNTIME=` of the unit or a drop-in, as `install.sh --coral` writes it): (name or
    None, where it was set)."""
    environ = os.environ if environ is None else environ
    if environ.get("MASKDET_RUNTIME"):
        return environ["MASKDET_RUNTIME"], "$MASKDET_RUNTIME"
    return service_environment(root).get("MASKDET_RUNTIME", (None, None))


def check_runtime(environ=None, root="/"):
    """The TFLite runtime maskdet uses (as `find_runtime` chooses it) and its version. Returns
    (Finding, runtime name or None, version or None)."""
    from edge.errors import ModelError
    from edge.inference.runtime import find_runtime

    name = "runtime"
    preferred, where = service_runtime(environ, root)
    installed = runtime_versions()
    versions = dict(installed)
    try:
        with quiet_logging():
            runtime = find_runtime(preferred)
    except ModelError as exc:
        return Finding(name, FAIL, one_line(exc), "pip install ai-edge-litert (64-bit, Python "
                       "3.10+) or tflite-runtime into the venv (install.sh does)"), None, None
    version = versions.get(runtime.name)
    chosen = f" (chosen by {where})" if where else ""
    others = [f"{n} {v or '?'}" for n, v in installed if n != runtime.name]
    also = f"; also installed: {', '.join(others)}" if others else ""
    data = {"runtime": runtime.name, "version": version, "installed": dict(installed)}
    if runtime.name == "tflite_runtime" and version and version.startswith("2.14"):
        numpy_version = _version_of("numpy") or "0"
        if (numbers(numpy_version) or (0,))[0] >= 2:
            return Finding(name, FAIL, f"tflite_runtime {version} with numpy {numpy_version}: its "
                           "wheels fail with numpy 2 (SystemError creating the interpreter)",
                           "pip install 'numpy<2' into the venv", data), runtime.name, version
    return Finding(name, OK, f"{runtime.name} {version or '(version unknown)'}{chosen}{also}",
                   data=data), runtime.name, version


def _version_of(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


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
    try:
        done = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=20,
                              check=False)
        for line in done.stdout.splitlines():
            if line.strip().startswith(LIBRARY_NAME + " ") and "=>" in line:
                return line.split("=>", 1)[1].strip(), "ldconfig -p"
    except (OSError, subprocess.SubprocessError):
        pass
    name = ctypes.util.find_library("edgetpu")
    return (name, "ctypes.util.find_library") if name else (None, None)


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


def check_pair(want, runtime, runtime_version, lib):
    """Whether the (runtime, libedgetpu) pair is known to work (`pairs.verdict`)."""
    name = "edgetpu pair"
    if runtime is None:
        return Finding(name, WARN if want != UNUSED else OK, "no TFLite runtime: nothing to match",
                       "install a runtime first (see the runtime line)")
    if lib.version is None:
        if lib.library and runtime == "ai_edge_litert":
            found = verdict(runtime, runtime_version or "0", "unknown")
            return Finding(name, FAIL if want != UNUSED else WARN, found.detail.replace(
                "libedgetpu unknown", f"the unpackaged {lib.library}"), found.fix)
        if lib.library:
            return Finding(name, WARN if want != UNUSED else OK, f"{runtime} {runtime_version} "
                           f"with an unpackaged {lib.library}: whether they match is unknown",
                           INSTALL_MATCHED)
        return Finding(name, OK, "no libedgetpu installed: nothing to match")
    found = verdict(runtime, runtime_version or "0", lib.version)
    status = found.status
    if status == FAIL and want == UNUSED:
        status = WARN  # installed but not used: it breaks the day an _edgetpu model is added
    return Finding(name, status, found.detail, found.fix,
                   {"runtime": runtime, "runtime_version": runtime_version,
                    "libedgetpu": lib.version})


# --------------------------------------------------------------------------- devices

@dataclass(frozen=True)
class Device:
    """An Edge TPU found on this machine."""

    kind: str          # usb | pcie
    where: str         # the sysfs name (2-1) or the device node (/dev/apex_0)
    ids: str = ""      # 18d1:9302
    note: str = ""
    speed_mbps: Optional[float] = None


def find_devices(root="/"):
    """(Edge TPU devices, PCIe Corals without a /dev/apex node) under `root`: USB ids from
    sys/bus/usb/devices/*/idVendor + idProduct, dev/apex_*, PCI ids from sys/bus/pci/devices."""
    devices, bare_pci = [], []
    for folder in sorted(glob.glob(_at(root, "sys/bus/usb/devices/*"))):
        try:
            ids = (_read(os.path.join(folder, "idVendor")).lower(),
                   _read(os.path.join(folder, "idProduct")).lower())
        except OSError:
            continue
        if ids in USB_IDS:
            try:
                speed = float(_read(os.path.join(folder, "speed")))
            except (OSError, ValueError):
                speed = None
            devices.append(Device("usb", os.path.basename(folder), ":".join(ids), USB_IDS[ids], speed))
    nodes = sorted(glob.glob(_at(root, "dev/apex_*")))
    devices += [Device("pcie", "/" + os.path.relpath(n, root)) for n in nodes]
    for folder in sorted(glob.glob(_at(root, "sys/bus/pci/devices/*"))):
        try:
            ids = tuple(_read(os.path.join(folder, n)).lower() for n in ("vendor", "device"))
        except OSError:
            continue
        if ids == PCI_ID and not nodes:
            bare_pci.append(os.path.basename(folder))
    return devices, bare_pci


def check_devices(want, root="/"):
    """Edge TPU devices: USB Corals by their ids in sysfs, PCIe / M.2 by /dev/apex_N (and a PCIe
    Coral whose driver is missing). Returns (Finding, [Device])."""
    name = "edgetpu device"
    devices, bare_pci = find_devices(root)
    data = {"devices": [d.__dict__ for d in devices]}
    if bare_pci and not devices:
        status = MISSING_STATUS[want] if want != UNUSED else WARN
        return Finding(name, status, f"a PCIe Coral is on the bus ({', '.join(bare_pci)}) but "
                       "there is no /dev/apex_0: the gasket / apex driver is not loaded",
                       "install the gasket driver (gasket-dkms; kernels >= 6.12 need a patched "
                       "build) and reboot; see README, Coral: PCIe", data), devices
    if not devices:
        usb_bus = os.path.isdir(_at(root, "sys/bus/usb/devices"))
        where = "" if usb_bus else "; this machine shows no USB bus in /sys"
        status, detail, fix = when_missing(
            want, "no Edge TPU found (no USB device 1a6e:089a or 18d1:9302, no "
            f"/dev/apex_0{where})",
            "plug the USB Accelerator into a USB 3 port (blue) of a Pi with a 3 A supply or a "
            "powered hub: it draws up to 900 mA; for PCIe / M.2, the gasket driver and `lspci`")
        return Finding(name, status, detail, fix, data), devices
    parts, slow = [], []
    for d in devices:
        if d.kind == "usb":
            speed = f", {d.speed_mbps:g} Mb/s" if d.speed_mbps else ""
            parts.append(f"USB Coral at {d.where} ({d.ids}, {d.note}{speed})")
            if d.speed_mbps is not None and d.speed_mbps <= 480:
                slow.append(d.where)
        else:
            parts.append(f"PCIe Coral {d.where}")
    if slow:
        return Finding(name, WARN, "; ".join(parts) + ": on a USB 2 port, slower",
                       "plug it into a USB 3 port (blue), directly, not through a USB 2 hub",
                       data), devices
    return Finding(name, OK, "; ".join(parts), data=data), devices


def rule_files(root="/"):
    """{path: text} of the udev rules files under `root`."""
    found = {}
    for folder in RULE_DIRS:
        for path in sorted(glob.glob(_at(root, folder, "*.rules"))):
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    found["/" + os.path.relpath(path, root)] = handle.read()
            except OSError:
                continue
    return found


def _rule_group(lines):
    groups = {g for line in lines for g in re.findall(r'GROUP\s*:?=\s*"([^"]+)"', line)}
    return sorted(groups)


def check_udev_rules(want, pcie=False, root="/"):
    """A udev rule that opens the Coral to a group: for USB one naming 1a6e:089a and 18d1:9302,
    for PCIe one for SUBSYSTEM "apex". Returns (Finding, [group names the rules give])."""
    name = "udev rule"
    files = rule_files(root)
    if pcie:
        hits = {p: [ln for ln in t.splitlines() if "apex" in ln and not ln.lstrip().startswith("#")]
                for p, t in files.items()}
        hits = {p: ln for p, ln in hits.items() if ln}
        if hits:
            groups = _rule_group([ln for lns in hits.values() for ln in lns])
            return Finding(name, OK, f"PCIe: {', '.join(hits)} (group {', '.join(groups) or 'not set'})",
                           data={"files": list(hits), "groups": groups}), groups
        status, detail, fix = when_missing(
            want, 'no udev rule for /dev/apex_* (SUBSYSTEM "apex")', 'sudo systemd/install.sh '
            '--coral=pcie (writes SUBSYSTEM=="apex", MODE="0660", GROUP="apex")')
        return Finding(name, status, detail, fix), []
    hits = {}
    for path, text in files.items():
        lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
        lowered = [ln.lower() for ln in lines]
        ids = {pid for (vid, pid) in USB_IDS if any(vid in ln and pid in ln for ln in lowered)}
        if ids:
            hits[path] = (ids, [ln for ln in lines if "1a6e" in ln.lower() or "18d1" in ln.lower()])
    fix = ("sudo systemd/install.sh --coral (writes the rule for 1a6e:089a and 18d1:9302, "
           "GROUP plugdev, MODE 0660), then unplug and replug the Coral")
    if not hits:
        status, detail, fix = when_missing(
            want, "no udev rule names the Coral's USB ids 1a6e:089a and 18d1:9302: only root may "
            "open it", fix)
        return Finding(name, status, detail, fix), []
    covered = set().union(*(ids for ids, _ in hits.values()))
    groups = _rule_group([ln for _, lns in hits.values() for ln in lns])
    text = f"USB: {', '.join(hits)} (group {', '.join(groups) or 'not set'})"
    data = {"files": list(hits), "groups": groups}
    if covered != {"089a", "9302"}:
        missing = "1a6e:089a (before the firmware loads)" if "089a" not in covered else \
            "18d1:9302 (after the firmware loads)"
        status = MISSING_STATUS[want] if want != UNUSED else WARN
        return Finding(name, status, f"{text} lacks {missing}", fix, data), groups
    if not groups:
        return Finding(name, WARN if want != UNUSED else OK, f"{text}: no GROUP is given", fix,
                       data), groups
    return Finding(name, OK, text, data=data), groups


def _group_table(root):
    """{group: (gid, [members])} and {user: primary gid} read from root/etc/group and passwd."""
    groups, users = {}, {}
    with contextlib.suppress(OSError):
        for line in _read(_at(root, "etc/group")).splitlines():
            parts = line.split(":")
            if len(parts) >= 4:
                groups[parts[0]] = (parts[2], [m for m in parts[3].split(",") if m])
    with contextlib.suppress(OSError):
        for line in _read(_at(root, "etc/passwd")).splitlines():
            parts = line.split(":")
            if len(parts) >= 4:
                users[parts[0]] = parts[3]
    return groups, users


def check_groups(want, needed, user=SERVICE_USER, root="/", also=()):
    """The service user is in the groups the device nodes belong to: `needed` (the Coral's:
    plugdev for USB, apex for PCIe) and `also` (video for a camera, gpio for pins)."""
    name = "groups"
    groups, users = _group_table(root)
    if user not in users:
        return Finding(name, WARN, f"the service user {user} does not exist (checked "
                       f"{_at(root, 'etc/passwd')})", "sudo systemd/install.sh creates it")

    def member(group):
        gid, members = groups.get(group, (None, []))
        return user in members or (gid is not None and users[user] == gid)

    missing_coral = [g for g in needed if not member(g)]
    missing_other = [g for g in also if g in groups and not member(g)]
    inside = [g for g in list(needed) + list(also) if member(g)]
    found = f"{user} is in {', '.join(inside)}" if inside else f"{user} is in none of " \
        f"{', '.join(list(needed) + list(also))}"
    if missing_coral:
        status = MISSING_STATUS[want]
        absent = [g for g in missing_coral if g not in groups]
        note = f" (no group {', '.join(absent)} on this system)" if absent else ""
        fix = None if status == OK else f"sudo usermod -aG {','.join(missing_coral)} {user} " \
            f"(install.sh --coral does), then restart maskdet{' (groupadd first)' if absent else ''}"
        detail = f"{found}; not in {', '.join(missing_coral)}{note}: it cannot open the Coral"
        if want == UNUSED:
            detail += " (the Edge TPU is not used)"
        return Finding(name, status, detail, fix)
    if missing_other:
        return Finding(name, WARN, f"{found}; not in {', '.join(missing_other)}",
                       f"sudo usermod -aG {','.join(missing_other)} {user}")
    return Finding(name, OK, found)


# --------------------------------------------------------------------------- the probe

PROBE_FIX = {
    "crash": "install the libedgetpu built for this runtime: " + INSTALL_CORAL,
    "abort": "a USB fault: check the cable, use a USB 3 port directly and a 3 A supply or a "
             "powered hub; replug the Coral",
    "hang": "the device is wedged: unplug and replug it (or power-cycle the Pi)",
    "killed": "run the doctor again; check `dmesg` for the out-of-memory killer",
    "exit": "read the worker's messages above",
    "model": "compile the model again with `maskdet-convert compile` (x86-64 Debian)",
}


def check_probe(want, model_path, runtime, device=None, timeout=20.0, library=None):
    """Load the delegate, open `model_path` on the Edge TPU and run it once, in the worker
    process of `edge.inference.edgetpu_worker` (a crash, abort or hang there is reported, never
    felt here). `library` defaults to what the worker loads ($MASKDET_EDGETPU_LIBRARY or
    libedgetpu.so.1 through the loader)."""
    from edge.inference.edgetpu_worker import EdgeTpuHost

    name = "edgetpu probe"
    if runtime is None:
        return Finding(name, MISSING_STATUS[want], "not probed: no TFLite runtime",
                       None if want == UNUSED else "install a runtime first")
    if not model_path or not os.path.isfile(model_path):
        return Finding(name, WARN, f"not probed: no model to probe with ({model_path})",
                       "restore the classifier's files (models/)")
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
    seconds = time.monotonic() - started
    where = f" on {device}" if device else ""
    data = {"model": model_path, "seconds": round(seconds, 3), "library": host.library}
    if details is not None:
        cpu_model = "" if model_path.endswith("_edgetpu.tflite") else \
            " (the CPU model: there is no Edge TPU build to run)"
        return Finding(name, OK, f"the delegate loaded in a child process (pid {pid}), opened the "
                       f"Edge TPU{where} and ran {os.path.basename(model_path)} once"
                       f"{cpu_model} ({seconds:.1f} s)", data=data)
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


# --------------------------------------------------------------------------- models

def _sha(path):
    from edge.inference.model_meta import sha256_of

    return sha256_of(path)


def _compiled(path):
    """True when a .tflite file holds the Edge TPU custom op (what edgetpu_compiler writes)."""
    try:
        with open(path, "rb") as handle:
            return b"edgetpu-custom-op" in handle.read()
    except OSError:
        return False


def _twin_finding(name, cpu_path, detail, data, coral_present, accelerator):
    """The part of a model's finding about its `_edgetpu` build."""
    from edge.inference.accelerator import edgetpu_twin

    twin = edgetpu_twin(cpu_path)
    folder = os.path.dirname(os.path.abspath(cpu_path))
    hint = COMPILE_HINT.format(cpu=os.path.basename(cpu_path), twin=os.path.basename(twin),
                               folder=folder)
    if os.path.isfile(twin):
        sha = _sha(twin)
        data["edgetpu_sha256"] = sha
        text = f"{detail}; Edge TPU build {os.path.basename(twin)} (sha256 {sha[:12]}…)"
        if not _compiled(twin):
            return Finding(name, WARN, f"{text} holds no edgetpu-custom-op: it is not compiled for "
                           "the Edge TPU (it would run on the CPU under the delegate)", hint, data)
        if accelerator.mode == "cpu":
            text += " (not used: accelerator.mode cpu)"
        return Finding(name, OK, text, data=data)
    text = f"{detail}; no Edge TPU build {os.path.basename(twin)}: the CPU runs it"
    if accelerator.mode == "cpu":
        return Finding(name, OK, text + " (accelerator.mode cpu)", data=data)
    if accelerator.mode == "edgetpu" and accelerator.require:
        return Finding(name, FAIL, text + "; `run` fails: the Edge TPU is required", hint, data)
    if accelerator.mode == "edgetpu" or coral_present:
        return Finding(name, WARN, text + (" although a Coral is here" if coral_present else ""),
                       hint, data)
    return Finding(name, OK, text, data=data)


def check_classifier_model(config, coral_present=False):
    """The classifier: its metadata, its model's sha256 against the metadata, that it opens and
    runs on the CPU, and its `_edgetpu` build (present and compiled, or missing: the CPU is
    used)."""
    from edge.config.checks import check_classifier
    from edge.errors import ConfigError, MaskdetError
    from edge.inference.accelerator import AcceleratorSettings
    from edge.inference.model_meta import load_classifier_meta
    from edge.paths import default_classifier

    name = "classifier model"
    meta_path = config.classifier.model or default_classifier()
    try:
        meta = load_classifier_meta(meta_path)
    except MaskdetError as exc:
        return Finding(name, FAIL, one_line(exc), "copy models/ again (install.sh does), or fix "
                       "classifier.model")
    if not os.path.isfile(meta.model_path):
        return Finding(name, FAIL, f"{meta.model_path} (named by {meta.path}) does not exist",
                       "copy models/ again (install.sh does)")
    sha = _sha(meta.model_path)
    data = {"metadata": meta.path, "model": meta.model_path, "sha256": sha}
    if sha != meta.sha256:
        return Finding(name, FAIL, f"{meta.model_path} has sha256 {sha[:12]}…, its metadata "
                       f"{os.path.basename(meta.path)} says {meta.sha256[:12]}…: not the model the "
                       "metadata describes", "copy the model and its metadata again, together", data)
    try:
        with quiet_logging():
            check_classifier(config, "config", AcceleratorSettings(mode="cpu", threads=1))
    except ConfigError as exc:
        return Finding(name, FAIL, one_line(exc).split(": ", 2)[-1], "copy models/ again "
                       "(install.sh does)", data)
    detail = (f"{os.path.basename(meta.model_path)} sha256 {sha[:12]}… matches "
              f"{os.path.basename(meta.path)}; opens and runs on the CPU")
    return _twin_finding(name, meta.model_path, detail, data, coral_present, config.accelerator)


def check_detector_model(config, coral_present=False):
    """The face detector's file: resolved as `run` resolves it, its sha256 against the pinned one
    of `maskdet models` (for a catalogue file), and its `_edgetpu` build for a TFLite detector."""
    from edge.errors import MaskdetError
    from edge.inference.detectors import default_model_key
    from edge.inference.fetch import CATALOG, resolve

    name = "detector model"
    settings = config.detector
    try:
        model = settings.model or default_model_key(settings)
        if not model:
            return Finding(name, FAIL, f"detector type {settings.type} has no default model",
                           "give its file in detector.model")
        path = resolve(model)
    except MaskdetError as exc:
        return Finding(name, FAIL, one_line(exc), "`maskdet models fetch` (install.sh does), "
                       "or fix detector.model")
    sha = _sha(path)
    data = {"model": path, "sha256": sha}
    pinned = CATALOG[model].sha256 if model in CATALOG else None
    if pinned and sha != pinned:
        return Finding(name, FAIL, f"{path} has sha256 {sha[:12]}…, not the pinned {pinned[:12]}… "
                       f"of `{model}`", f"delete it and `maskdet models fetch {model}`", data)
    detail = f"{settings.type}: {path} (sha256 {sha[:12]}…{', as pinned' if pinned else ''})"
    if not path.endswith(".tflite"):
        return Finding(name, OK, detail + "; runs on the CPU (not a TFLite model: no Edge TPU "
                       "build)", data=data)
    return _twin_finding(name, path, detail, data, coral_present, config.accelerator)


# --------------------------------------------------------------------------- cameras, GPIO

def check_camera(camera, timeout=10.0):
    """One camera: its source opens and gives a first frame within `timeout` seconds (in a
    thread: a camera that blocks leaves the doctor's deadline intact)."""
    from edge.service.sources import create_source

    name = f"camera {camera.name}"
    source_config = camera.source
    where = source_config.url or source_config.path or f"picamera2 {source_config.camera_index}"
    result = {}

    def attempt():
        source = None
        try:
            source = create_source(source_config)
            source.open()
            result["frame"] = source.read()
        except Exception as exc:  # a SourceError, or whatever a capture library raises
            result["error"] = exc
        finally:
            if source is not None:
                with contextlib.suppress(Exception):
                    source.close()

    with _opencv_quiet():
        thread = threading.Thread(target=attempt, name="doctor-camera", daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(timeout)
    seconds = time.monotonic() - started
    if thread.is_alive():
        return Finding(name, FAIL, f"{where}: no frame within {timeout:g} s",
                       "check the camera, its cable or its stream (for RTSP: the address, the "
                       "network, the camera's credentials)")
    if "error" in result:
        exc = result["error"]
        detail = f"{where}: {one_line(exc)}"
        fix = "check the device, URL or file in the config"
        if source_config.type == "opencv" and str(source_config.url).startswith("/dev/") and \
                not os.path.exists(source_config.url):
            detail = f"{source_config.url} does not exist: camera not found"
            fix = "plug the camera in; `v4l2-ctl --list-devices` lists the cameras"
        elif source_config.type == "picamera2":
            fix = "on Raspberry Pi OS: sudo apt install python3-picamera2 (the venv is made with " \
                  "--system-site-packages); `rpicam-hello --list-cameras` lists the cameras"
        elif not os.path.isabs(where) and source_config.type in ("opencv", "folder") and \
                "://" not in where:
            fix += f" (a relative path is taken from the current folder, {os.getcwd()}; the " \
                   "service's is /var/lib/maskdet)"
        return Finding(name, FAIL, detail, fix)
    frame = result.get("frame")
    if frame is None:
        return Finding(name, FAIL, f"{where}: opened but gave no frame", "check the source")
    height, width = frame.shape[:2]
    return Finding(name, OK, f"{where}: first frame {width}x{height} in {seconds:.1f} s",
                   data={"width": width, "height": height})


@contextlib.contextmanager
def _opencv_quiet():
    """OpenCV's own warnings (a camera it cannot open) off while a camera is tried."""
    try:
        import cv2

        logging_module = cv2.utils.logging
        previous = logging_module.getLogLevel()
        logging_module.setLogLevel(logging_module.LOG_LEVEL_SILENT)
    except Exception:
        yield
        return
    try:
        yield
    finally:
        logging_module.setLogLevel(previous)


def check_gpio(gpio, pin_factory=None):
    """Each configured pin can be claimed through gpiozero (then released, off): the service's
    own Indicator opens them. gpiozero missing, or no pin factory (not a Raspberry Pi), is said."""
    from edge.errors import ConfigError
    from edge.service.indicator import ROLES, WHAT, GpioError, Indicator

    name = "gpio"
    configured = [role for role in ROLES if getattr(gpio, role) is not None]
    if not configured:
        return Finding(name, OK, "no pins configured: no light nor buzzer to drive")
    try:
        with quiet_logging():
            indicator = Indicator(gpio, pin_factory)
    except GpioError as exc:
        return Finding(name, FAIL, f"GPIO not available here: {one_line(exc)}",
                       "run the doctor on the Raspberry Pi, in the venv with the pi extra "
                       "(pip install 'maskdet[pi]')")
    except ConfigError as exc:
        return Finding(name, FAIL, one_line(exc), "fix the pin in the config (docs/wiring.md)")
    try:
        faults = indicator.faults
        labels = {role: f"{WHAT[role]} {out.label}" for role, out in indicator.outputs.items()}
        factory = type(pin_factory or _factory_of(indicator)).__name__
    finally:
        with quiet_logging():
            indicator.close()
    if faults:
        busy = all(re.search(r"busy|in use", f, re.I) for f in faults.values())
        detail = "; ".join(f"{labels[r]}: {f}" for r, f in faults.items())
        if busy:
            return Finding(name, WARN, f"{detail}: held by another program",
                           "the maskdet service holds its pins while it runs: stop it (sudo "
                           "systemctl stop maskdet) to test them, or run `maskdet test-indicator`")
        return Finding(name, FAIL, detail, "check that no other program or dtoverlay uses the pin, "
                       "and that the user is in the gpio group (docs/wiring.md)")
    return Finding(name, OK, f"{', '.join(labels[r] for r in configured)}: claimed and released "
                   f"(pin factory {factory})")


def _factory_of(indicator):
    for out in indicator.outputs.values():
        if out.device is not None:
            return out.device.pin_factory
    return None


# --------------------------------------------------------------------------- the broker

def _password(mqtt, environ, conf_dir):
    """(password, where from): the environment / systemd credential as the service reads it,
    else the credential file install.sh keeps beside the config (readable by root)."""
    from edge.service.publisher import read_password

    password = read_password(mqtt, environ)
    if password:
        return password, "the environment / systemd credential"
    if conf_dir:
        path = os.path.join(conf_dir, mqtt.password_credential)
        with contextlib.suppress(OSError):
            text = _read(path)
            if text:
                return text, path
    return None, None


def check_broker(mqtt, device_id="doctor", timeout=10.0, environ=None, conf_dir=None):
    """Connect to the broker with the config's TLS settings, user name and password (as the
    publisher does, with a client id of its own so as not to take over the service's session),
    wait for its answer within `timeout` seconds, and disconnect. A refused port, an untrusted or
    mismatched certificate, and a refused login are each named."""
    import paho.mqtt.client as paho

    from edge.service.publisher import client_class, connect_failure

    name = "broker"
    environ = os.environ if environ is None else environ
    where = f"{mqtt.host}:{mqtt.port}{' (TLS)' if mqtt.tls else ''}"
    client = client_class()(paho.CallbackAPIVersion.VERSION2,
                            client_id=f"maskdet-doctor-{device_id}-{os.getpid()}", clean_session=True)
    client.connect_timeout = timeout
    password, from_where = _password(mqtt, environ, conf_dir)
    if mqtt.username:
        client.username_pw_set(mqtt.username, password)
    answered, result = threading.Event(), {}

    def on_connect(_client, _userdata, _flags, reason_code, _properties=None):
        result["reason"] = reason_code
        answered.set()

    client.on_connect = on_connect
    try:
        if mqtt.tls:
            client.tls_set(ca_certs=mqtt.tls.ca_file, certfile=mqtt.tls.cert_file,
                           keyfile=mqtt.tls.key_file)
            client.tls_insecure_set(mqtt.tls.insecure)
        client.connect(mqtt.host, mqtt.port, mqtt.keepalive_s)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        detail = connect_failure(exc, mqtt.tls) if isinstance(exc, OSError) else str(exc)
        return Finding(name, FAIL, f"{where}: {one_line(detail)}", _broker_fix(exc, mqtt))
    client.loop_start()
    try:
        answered.wait(timeout)
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
        client.loop_stop()
    if "reason" not in result:
        return Finding(name, FAIL, f"{where}: the connection opened but the broker did not answer "
                       f"within {timeout:g} s", "is this an MQTT port (not HTTP, not the TLS port "
                       "without tls)?")
    reason = result["reason"]
    user = f" as {mqtt.username}" if mqtt.username else " (anonymous)"
    if reason.is_failure:
        given = f", password from {from_where}" if from_where else ", no password found"
        return Finding(name, FAIL, f"{where}: the broker refused the login{user}: {reason}",
                       f"check mqtt.username and the password ($MASKDET_MQTT_PASSWORD or "
                       f"{os.path.join(conf_dir or '/etc/maskdet', mqtt.password_credential)}"
                       f"{given})")
    return Finding(name, OK, f"{where}: connected{user}")


def _broker_fix(exc, mqtt):
    import socket
    import ssl

    if isinstance(exc, ssl.SSLError):
        return "fix mqtt.tls (the CA that signed the broker's certificate, the host name it " \
               "holds, the clock)"
    if isinstance(exc, ConnectionRefusedError):
        return f"start the broker, or fix mqtt.host / mqtt.port ({mqtt.host}:{mqtt.port})"
    if isinstance(exc, socket.gaierror):
        return "fix mqtt.host, or the name service (DNS, /etc/hosts)"
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return "give readable PEM files in mqtt.tls"
    return "check mqtt.host, mqtt.port, the network and any firewall"


# --------------------------------------------------------------------------- storage, health

def check_outbox(path):
    """The outbox's folder (`check_outbox_path` when it exists; a missing folder is not created
    here: the service makes it)."""
    from edge.errors import ConfigError
    from edge.service.outbox import MEMORY, check_outbox_path

    name = "outbox"
    if str(path) == MEMORY:
        return Finding(name, WARN, "mqtt.outbox_path is :memory:: events the broker has not taken "
                       "are lost when the service stops", "set mqtt.outbox_path to a file, e.g. "
                       f"{STATE_DIR}/outbox.db")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(folder):
        if folder == STATE_DIR:
            return Finding(name, OK, f"{folder} does not exist yet: systemd makes it for the "
                           "service (StateDirectory=maskdet)")
        return Finding(name, WARN, f"{folder} does not exist yet (maskdet run creates it, if it "
                       "may)", f"sudo install -d -o {SERVICE_USER} -g {SERVICE_USER} {folder}")
    try:
        check_outbox_path(path)
    except (ConfigError, OSError, ValueError) as exc:
        return Finding(name, FAIL, one_line(exc), f"give the service user ({SERVICE_USER}) write "
                       "access, or set mqtt.outbox_path to a writable folder")
    as_root = " (checked as root: the service writes as maskdet)" if os.geteuid() == 0 else ""
    return Finding(name, OK, f"{path}: {folder} is writable{as_root}")


def _existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n} B"


def check_disk(path, fail_below=DISK_FAIL_BYTES, warn_below=DISK_WARN_BYTES,
               warn_fraction=DISK_WARN_FRACTION):
    """Free space where the outbox lives (the nearest existing folder of `path`)."""
    name = "disk"
    where = _existing(path)
    try:
        st = os.statvfs(where)
    except OSError as exc:
        return Finding(name, WARN, f"{where}: free space unknown ({exc.strerror or exc})",
                       "check the file system")
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    fraction = free / total if total else 0.0
    detail = f"{_size(free)} free of {_size(total)} ({fraction:.0%}) at {where}"
    data = {"free_bytes": free, "total_bytes": total, "path": where}
    fix = ("free space: sudo journalctl --vacuum-size=100M, sudo apt-get clean, delete old "
           "snapshots (snapshots.folder)")
    if free < fail_below:
        return Finding(name, FAIL, detail + ": a full disk drops new events", fix, data)
    if free < warn_below or fraction < warn_fraction:
        return Finding(name, WARN, detail + ": little left", fix, data)
    return Finding(name, OK, detail, data=data)


def check_temperature(root="/"):
    """The CPU temperature (sys/class/thermal/thermal_zone0/temp, in m°C)."""
    name = "temperature"
    path = _at(root, "sys/class/thermal/thermal_zone0/temp")
    try:
        celsius = int(_read(path)) / 1000.0
    except (OSError, ValueError):
        return Finding(name, WARN, f"{path} cannot be read: the CPU temperature is not known here "
                       "(not a Raspberry Pi?)", "run the doctor on the Pi")
    data = {"celsius": celsius}
    if celsius >= TEMPERATURE_FAIL_C:
        return Finding(name, FAIL, f"CPU at {celsius:.1f} °C: the Pi throttles from 80 °C",
                       COOLING_FIX, data)
    if celsius >= TEMPERATURE_WARN_C:
        return Finding(name, WARN, f"CPU at {celsius:.1f} °C: close to throttling (80 °C)",
                       COOLING_FIX, data)
    return Finding(name, OK, f"CPU at {celsius:.1f} °C", data=data)


def read_throttled(root="/", vcgencmd=None):
    """(the firmware's throttling word, where it came from), or (None, why not): `vcgencmd
    get_throttled`, else the firmware's sysfs file."""
    command = vcgencmd if vcgencmd is not None else shutil.which("vcgencmd")
    if command:
        try:
            done = subprocess.run([command, "get_throttled"], capture_output=True, text=True,
                                  timeout=5, check=False)
            value = done.stdout.strip().split("=", 1)[-1]
            if done.returncode == 0:
                return int(value, 16), "vcgencmd get_throttled"
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    path = _at(root, THROTTLED_FILE)
    try:
        return int(_read(path).split("=", 1)[-1], 16), path
    except (OSError, ValueError):
        return None, "vcgencmd is not installed and the firmware's get_throttled file is absent"


def check_throttling(root="/", vcgencmd=None):
    """Under-voltage and throttling, now and since boot (the firmware's throttling word)."""
    name = "throttling"
    raw, where = read_throttled(root, vcgencmd)
    if raw is None:
        return Finding(name, WARN, f"not known here: {where} (not a Raspberry Pi?)",
                       "run the doctor on the Pi (vcgencmd comes with Raspberry Pi OS)")
    now = [text for bit, text in THROTTLE_BITS.items() if raw & (1 << bit)]
    before = [text for bit, text in THROTTLE_BITS.items() if raw & (1 << (bit + 16))]
    data = {"raw": hex(raw), "now": now, "since_boot": before}
    power = raw & 0x10001
    fix = POWER_FIX if power else COOLING_FIX
    if power and raw & 0xE000E:
        fix = f"{POWER_FIX}; {COOLING_FIX}"
    if now:
        return Finding(name, FAIL, f"{', '.join(now)} now (0x{raw:x}, {where})", fix, data)
    if before:
        return Finding(name, WARN, f"{', '.join(before)} since boot, not now (0x{raw:x})", fix, data)
    return Finding(name, OK, f"no under-voltage or throttling since boot (0x{raw:x})", data=data)
