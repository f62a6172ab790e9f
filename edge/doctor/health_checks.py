"""The Pi's health: CPU temperature, and throttling / under-voltage (now and since boot). Both
are read by `edge.service.health`, the readers behind `stats`, so that the doctor and the
service report the same numbers; here they become findings with a fix."""
from edge.doctor.findings import FAIL, OK, WARN, Finding, at
from edge.service import health

TEMPERATURE_WARN_C = 70.0
TEMPERATURE_FAIL_C = 80.0  # the Raspberry Pi firmware throttles the CPU from 80 °C (85 °C hard)
THERMAL_DIR = health.THERMAL.lstrip("/")                  # sys/class/thermal
THROTTLED_FILE = health.THROTTLED_FILES[0].lstrip("/")    # the firmware's word in sysfs
# The words of the report for the flags `health.decode_throttled` names.
THROTTLE_LABELS = {"under_voltage": "under-voltage", "frequency_capped": "ARM frequency capped",
                   "throttled": "throttled", "soft_temperature_limit": "soft temperature limit"}
POWER_FIX = ("use the official power supply (5 V 3 A for a Pi 4, 5 V 5 A for a Pi 5) and, for a "
             "USB Coral (up to 900 mA), a powered USB hub or a powered port")
COOLING_FIX = ("cool the Pi: a heatsink and fan (the Active Cooler on a Pi 5) and free airflow; "
               "the Coral's max clock (libedgetpu1-max) adds heat")


def check_temperature(root="/"):
    """The CPU temperature (`health.cpu_temperature`: the cpu / soc thermal zone under
    sys/class/thermal, else the first zone that reads)."""
    name = "temperature"
    folder = at(root, THERMAL_DIR)
    celsius = health.cpu_temperature(folder)
    if celsius is None:
        return Finding(name, WARN, f"no thermal zone in {folder} can be read: the CPU temperature "
                       "is not known here (not a Raspberry Pi?)", "run the doctor on the Pi")
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
    get_throttled`, else the firmware's sysfs file, each read by `health.throttling`."""
    found = health.throttling(files=(), vcgencmd=vcgencmd)
    if found is not None:
        return found["raw"], "vcgencmd get_throttled"
    path = at(root, THROTTLED_FILE)
    found = health.throttling(files=(path,), vcgencmd="")  # "": the file only, no vcgencmd
    if found is not None:
        return found["raw"], path
    return None, "vcgencmd is not installed and the firmware's get_throttled file is absent"


def check_throttling(root="/", vcgencmd=None):
    """Under-voltage and throttling, now and since boot (the firmware's throttling word)."""
    name = "throttling"
    raw, where = read_throttled(root, vcgencmd)
    if raw is None:
        return Finding(name, WARN, f"not known here: {where} (not a Raspberry Pi?)",
                       "run the doctor on the Pi (vcgencmd comes with Raspberry Pi OS)")
    flags = health.decode_throttled(raw)
    now = [THROTTLE_LABELS[flag] for flag in flags["now"]]
    before = [THROTTLE_LABELS[flag] for flag in flags["since_boot"]]
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
