"""The device's health for `stats`: CPU temperature and throttling, load, memory, free disk for
the outbox, system uptime. Each reading is null where this machine cannot tell (no thermal zone,
not a Raspberry Pi, a sandbox hiding a file) and never raises.

Reading takes a few file reads, and on a Raspberry Pi without the firmware's sysfs file one
`vcgencmd get_throttled` (a subprocess, up to a second): `HealthReader` does it in a thread of
its own, so the frame loop only ever takes the last reading.
"""
import logging
import os
import shutil
import subprocess
import threading

log = logging.getLogger(__name__)

THERMAL = "/sys/class/thermal"
# The Raspberry Pi firmware's throttling flags, as `vcgencmd get_throttled` prints them; the
# kernel's raspberrypi-hwmon / firmware driver exposes the same word here (readable in the
# systemd sandbox, where vcgencmd cannot reach /dev/vchiq).
THROTTLED_FILES = ("/sys/devices/platform/soc/soc:firmware/get_throttled",)
THROTTLE_BITS = {0: "under_voltage", 1: "frequency_capped", 2: "throttled", 3: "soft_temperature_limit"}
SINCE_BOOT_SHIFT = 16
VCGENCMD_TIMEOUT_S = 1.0


def _read(path):
    with open(path, encoding="ascii", errors="replace") as handle:
        return handle.read().strip()


def cpu_temperature(root=THERMAL):
    """The CPU's temperature in °C from the first thermal zone of type cpu / soc (else the first
    zone), or None."""
    try:
        zones = sorted(z for z in os.listdir(root) if z.startswith("thermal_zone"))
    except OSError:
        return None
    ordered = sorted(zones, key=lambda z: not _is_cpu_zone(os.path.join(root, z)))
    for zone in ordered:
        try:
            return round(int(_read(os.path.join(root, zone, "temp"))) / 1000.0, 1)
        except (OSError, ValueError):
            continue
    return None


def _is_cpu_zone(path):
    try:
        kind = _read(os.path.join(path, "type")).lower()
    except OSError:
        return False
    return "cpu" in kind or "soc" in kind or "x86_pkg" in kind


def decode_throttled(raw):
    """The firmware's throttling word as {"raw", "now": [flags], "since_boot": [flags]}."""
    return {"raw": raw,
            "now": [name for bit, name in THROTTLE_BITS.items() if raw & (1 << bit)],
            "since_boot": [name for bit, name in THROTTLE_BITS.items()
                           if raw & (1 << (bit + SINCE_BOOT_SHIFT))]}


def _parse_throttled(text):
    """`throttled=0x50005` or `50005` (hex) -> int, or None."""
    value = text.strip().split("=", 1)[-1].strip()
    try:
        return int(value, 16)
    except ValueError:
        return None


def throttling(files=THROTTLED_FILES, vcgencmd=None):
    """The Raspberry Pi's throttling flags (sysfs first, then `vcgencmd get_throttled`), or None
    where neither is there (any other machine)."""
    for path in files:
        try:
            raw = _parse_throttled(_read(path))
        except OSError:
            continue
        if raw is not None:
            return decode_throttled(raw)
    command = vcgencmd if vcgencmd is not None else shutil.which("vcgencmd")
    if not command:
        return None
    try:
        done = subprocess.run([command, "get_throttled"], capture_output=True, text=True,
                              timeout=VCGENCMD_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("vcgencmd get_throttled failed: %s", exc)
        return None
    raw = _parse_throttled(done.stdout) if done.returncode == 0 else None
    return decode_throttled(raw) if raw is not None else None


def load_average():
    """The 1, 5 and 15 minute load averages, or None."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def memory(meminfo="/proc/meminfo"):
    """{"total_mb", "available_mb"} from /proc/meminfo, or None."""
    try:
        fields = {}
        with open(meminfo, encoding="ascii", errors="replace") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                if name in ("MemTotal", "MemAvailable"):
                    fields[name] = int(rest.split()[0]) / 1024.0
        return {"total_mb": round(fields["MemTotal"], 1),
                "available_mb": round(fields["MemAvailable"], 1)}
    except (OSError, KeyError, ValueError, IndexError):
        return None


def disk_free_mb(path):
    """Free megabytes (for this user) on the file system holding `path` (or its nearest existing
    folder), or None (":memory:" or nothing to look at)."""
    if not path or path == ":memory:":
        return None
    folder = os.path.abspath(os.fspath(path))
    while folder and not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return round(st.f_bavail * st.f_frsize / 1e6, 1)


def system_uptime(path="/proc/uptime"):
    """Seconds since the machine booted, or None."""
    try:
        return round(float(_read(path).split()[0]), 1)
    except (OSError, ValueError, IndexError):
        return None


def read_health(outbox_path):
    """Every reading, each None where this machine cannot tell (never raises)."""
    return {"cpu_temperature_c": _safely(cpu_temperature), "throttled": _safely(throttling),
            "load": _safely(load_average), "memory": _safely(memory),
            "disk_free_mb": _safely(disk_free_mb, outbox_path),
            "system_uptime_s": _safely(system_uptime)}


def _safely(read, *args):
    try:
        return read(*args)
    except Exception:  # a reading that fails in an unforeseen way is unknown, never fatal
        log.debug("health reading %s failed", read.__name__, exc_info=True)
        return None


class HealthReader:
    """Reads the health every `interval_s` in its own thread; `latest` is the last reading (None
    before the first). `read` is injectable for tests."""

    def __init__(self, outbox_path, interval_s=10.0, read=read_health):
        self.outbox_path = outbox_path
        self.interval_s = interval_s
        self._read = read
        self.latest = None
        self._failed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="maskdet-health", daemon=True)

    def start(self):
        """Take the first reading now (in the thread) and then every interval."""
        if self._thread.ident is None:
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                self.latest = self._read(self.outbox_path)
                if self._failed:
                    log.info("health readings work again")
                self._failed = False
            except Exception:
                if not self._failed:
                    log.exception("reading the device health failed; stats go on without it")
                self._failed = True
            self._stop.wait(self.interval_s)

    def stop(self, timeout=2.0):
        """Stop reading."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
