"""The entrance indicator through gpiozero: a green LED while the view is clear, a red LED during
an alert, and a buzzer pattern when an alert starts (at most once per cooldown).

Nothing here blocks or raises into the frame loop: `show` only writes a pin when its state
changes, the buzzer pattern plays in a thread of its own, and a GPIO error is logged once with the
pin and what to check while the other outputs go on (a failing output is retried on the next
frame and its recovery logged). gpiozero is imported only when an `Indicator` is built.

Pins are named as gpiozero names them on the 40-pin header of every current Raspberry Pi (B+, 2,
3, 4, 5, Zero, 400, 500): a BCM number (17 or "17"), "GPIO17", "BCM17", "BOARD11" or "J8:11"
(physical pin 11) or "WPI0" (wiringPi number). `parse_pin` checks a config value against that
header without gpiozero, so `maskdet check-config` can run on any machine.
"""
import logging
import re
import threading
import time
import warnings

from edge.errors import ConfigError, GpioError

log = logging.getLogger(__name__)

ROLES = ("green", "red", "buzzer")
WHAT = {"green": "green LED", "red": "red LED", "buzzer": "buzzer"}


# The 40-pin header (J8), the same on every Raspberry Pi since the B+: physical pin ->
# (BCM GPIO number or the pin's power / ground name, wiringPi number), as gpiozero's
# PiBoardInfo names them (tests/service/test_indicator.py checks this table against gpiozero).
HEADER = {
    1: ("3V3", None), 2: ("5V", None), 3: (2, 8), 4: ("5V", None), 5: (3, 9), 6: ("GND", None),
    7: (4, 7), 8: (14, 15), 9: ("GND", None), 10: (15, 16), 11: (17, 0), 12: (18, 1),
    13: (27, 2), 14: ("GND", None), 15: (22, 3), 16: (23, 4), 17: ("3V3", None), 18: (24, 5),
    19: (10, 12), 20: ("GND", None), 21: (9, 13), 22: (25, 6), 23: (11, 14), 24: (8, 10),
    25: ("GND", None), 26: (7, 11), 27: (0, 30), 28: (1, 31), 29: (5, 21), 30: ("GND", None),
    31: (6, 22), 32: (12, 26), 33: (13, 23), 34: ("GND", None), 35: (19, 24), 36: (16, 27),
    37: (26, 25), 38: (20, 28), 39: ("GND", None), 40: (21, 29),
}
PHYSICAL = {bcm: number for number, (bcm, _) in HEADER.items() if isinstance(bcm, int)}
WIRINGPI = {wpi: bcm for bcm, wpi in HEADER.values() if wpi is not None}
GPIO_PHYSICAL = sorted(PHYSICAL.values())

PIN_FORMS = ("a BCM GPIO number 0-27 (17), or a name as gpiozero takes it: GPIO17 or BCM17 "
             "(BCM number), BOARD11 or J8:11 (physical pin 11 of the 40-pin header), WPI0 "
             "(wiringPi number)")
_NAME = re.compile(r"(GPIO|BCM|BOARD|J8:|WPI)?(0|[1-9][0-9]*)")
_LOOSE = re.compile(r"\s*([A-Za-z_]*[A-Za-z_:])?\s*([0-9]+)\s*")


def _bcm_or_problem(value):
    """(BCM number, None) for a pin value gpiozero accepts, else (None, what is wrong and the
    accepted forms)."""
    bcm, problem = _resolve(value)
    if problem is None:
        return bcm, None
    return None, f"{problem}{' Accepted' if problem.endswith('?') else '; accepted'}: {PIN_FORMS}"


def _resolve(value):
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None, f"expected a pin number or name, not {type(value).__name__}"
    if isinstance(value, int):
        if value in PHYSICAL:
            return value, None
        return None, "BCM GPIO numbers on the 40-pin header are 0-27"
    match = _NAME.fullmatch(value)
    if match is None:
        return None, _hint(value)
    prefix, number = match.group(1) or "", int(match.group(2))
    if prefix in ("", "GPIO", "BCM"):
        if number in PHYSICAL:
            return number, None
        return None, "the 40-pin header has GPIO0-GPIO27 only"
    if prefix == "WPI":
        if number in WIRINGPI:
            return WIRINGPI[number], None
        return None, f"wiringPi numbers on the 40-pin header are {', '.join(map(str, sorted(WIRINGPI)))}"
    if number not in HEADER:
        return None, "the header's physical pins are 1-40"
    what = HEADER[number][0]
    if isinstance(what, int):
        return what, None
    return None, (f"physical pin {number} is {what}, not a GPIO (GPIO pins are physical "
                  f"{', '.join(map(str, GPIO_PHYSICAL))})")


def _hint(value):
    loose = _LOOSE.fullmatch(value)
    if loose:
        prefix, number = (loose.group(1) or "").upper(), int(loose.group(2))
        canonical = f"{prefix}{number}"
        if canonical != value and _NAME.fullmatch(canonical) and _resolve(canonical)[0] is not None:
            return f"names are written exactly as gpiozero has them: did you mean {canonical}?"
        if number in HEADER and isinstance(HEADER[number][0], int):
            alt = f" or GPIO{number} (physical pin {PHYSICAL[number]})" if number in PHYSICAL else ""
            return (f"not a pin name gpiozero knows: did you mean BOARD{number} (physical pin "
                    f"{number}, GPIO{HEADER[number][0]}){alt}?")
    return "not a pin name gpiozero knows"


def pin_problem(value):
    """The config check of a pin value: None when gpiozero accepts it, else what is wrong (the
    config loader adds the key path, the line and the value)."""
    return _bcm_or_problem(value)[1]


def parse_pin(value):
    """Validate a pin value from the config; returns it as gpiozero is given it (the int, or the
    name unchanged: gpiozero maps names through the board it runs on). ConfigError names the value
    and the accepted forms."""
    bcm, problem = _bcm_or_problem(value)
    if problem:
        raise ConfigError(f"pin {value!r}: {problem}")
    return value


def bcm_of(value):
    """The BCM GPIO number a valid pin value stands for on the 40-pin header ("BOARD11" -> 17)."""
    bcm, problem = _bcm_or_problem(value)
    if problem:
        raise ConfigError(f"pin {value!r}: {problem}")
    return bcm


def describe_pin(value):
    """A valid pin value as people find it on the board: 'GPIO17 (pin 11)'."""
    bcm = bcm_of(value)
    return f"GPIO{bcm} (pin {PHYSICAL[bcm]})"


def pin_conflicts(outputs):
    """None, or what is wrong when two outputs of {role: PinConfig or None} use the same GPIO
    (whatever names they are given by); invalid pins are left to their own check."""
    seen = {}
    for role, pin_config in outputs.items():
        if pin_config is None:
            continue
        bcm, problem = _bcm_or_problem(pin_config.pin)
        if problem:
            continue
        if bcm in seen:
            first = seen[bcm]
            return (f"{first} and {role} both use GPIO{bcm} (physical pin {PHYSICAL[bcm]}): "
                    f"{first}.pin {outputs[first].pin!r}, {role}.pin {pin_config.pin!r}; give each "
                    "output its own pin")
        seen[bcm] = role
    return None


def _what_to_check(label):
    return (f"check that no other program, HAT driver or dtoverlay (/boot/firmware/config.txt) "
            f"uses {label}, that this user may use /dev/gpiochip* (group gpio), and the wiring "
            "(docs/wiring.md); `maskdet test-indicator` tests each output")


def _error_text(exc):
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Output:
    """One configured output: its role, config, gpiozero device (None when it could not be
    opened) and its current fault (None while it works)."""

    def __init__(self, role, config, label):
        self.role = role
        self.config = config
        self.label = label
        self.device = None
        self.fault = None
        self.applied = None  # the value last written successfully

    @property
    def name(self):
        return f"{WHAT[self.role]} on {self.label}"


class Indicator:
    """Green / red LEDs and a buzzer, each optional, driven by one `show(alert)` call per frame.

    `pin_factory`: a gpiozero pin factory (MockFactory in tests); None: gpiozero's default on the
    Pi (lgpio). Raises ConfigError for a pin gpiozero would not accept and GpioError when gpiozero
    is missing or no pin factory works here. An output whose pin cannot be opened is logged and
    left out; the others work."""

    def __init__(self, gpio_config, pin_factory=None, clock=time.monotonic):
        self.config = gpio_config
        self.clock = clock
        self._last_buzz = None
        self._alert = None
        self._closed = False
        self._pattern = None  # (thread, stop event) of the buzzer pattern playing
        pins = {role: getattr(gpio_config, role) for role in ROLES}
        for pin_config in pins.values():
            if pin_config is not None:
                parse_pin(pin_config.pin)
        self.outputs = {role: Output(role, c, describe_pin(c.pin)) for role, c in pins.items() if c}
        if not self.outputs:
            return
        try:
            from gpiozero import LED, Buzzer, Device
        except ImportError as exc:
            raise GpioError(f"gpiozero cannot be imported ({exc}): on the Raspberry Pi, "
                            "pip install maskdet[pi] (gpiozero and lgpio)") from exc
        if pin_factory is None:
            pin_factory = self._default_factory(Device)
        for out in self.outputs.values():
            cls = Buzzer if out.role == "buzzer" else LED
            try:
                out.device = cls(parse_pin(out.config.pin), active_high=out.config.active_high,
                                 initial_value=False, pin_factory=pin_factory)
                out.applied = False
            except Exception as exc:  # a busy pin, no permission: degrade to the other outputs
                self._fault(out, exc, opening=True)

    @staticmethod
    def _default_factory(device_class):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                device_class.ensure_pin_factory()
            except Exception as exc:  # gpiozero's BadPinFactory (an ImportError), or a factory's own
                reasons = "; ".join(str(w.message).replace("Falling back from ", "")
                                    for w in caught if "Falling back" in str(w.message))
                raise GpioError(f"no GPIO pin factory works here ({reasons or _error_text(exc)}): run "
                                "this on the Raspberry Pi, with the pi extra installed: "
                                "pip install maskdet[pi] (gpiozero and lgpio)") from exc
        for w in caught:
            log.debug("gpiozero: %s", w.message)
        return device_class.pin_factory

    @property
    def faults(self):
        """{role: what is wrong} for the outputs that failed their last open or write."""
        return {role: out.fault for role, out in self.outputs.items() if out.fault}

    def _fault(self, out, exc, opening=False):
        message = (f"{'cannot be opened' if opening else 'failed'}: {_error_text(exc)}")
        if out.fault is None:
            log.error("%s %s; %s. The other outputs go on.", out.name, message, _what_to_check(out.label))
        else:
            log.debug("%s %s (again)", out.name, message)
        out.fault = message

    def set(self, role, on):
        """Turn one output on or off; False (logged once) when its pin cannot be written."""
        out = self.outputs.get(role)
        if out is None or out.device is None or (self._closed and on):
            return False
        try:
            if on:
                out.device.on()
            else:
                out.device.off()
        except Exception as exc:
            self._fault(out, exc)
            return False
        out.applied = bool(on)
        if out.fault is not None:
            log.warning("%s works again", out.name)
            out.fault = None
        return True

    def show(self, alert, silent=False):
        """Reflect the alert state: pins are written only when their state changes (a failed
        write is retried on the next call), a buzz starts when an audible alert starts; a
        `silent` alert (the buzzer muted) lights red and stops a pattern playing. Never raises."""
        try:
            alert = bool(alert)
            for role, value in (("green", not alert), ("red", alert)):
                out = self.outputs.get(role)
                if out is not None and out.device is not None and out.applied != value:
                    self.set(role, value)
            audible = alert and not silent
            if audible and self._alert is not True:
                self._buzz()
            elif silent and self._pattern is not None:
                self._stop_pattern()
                if "buzzer" in self.outputs:
                    self._off(self.outputs["buzzer"])
            self._alert = audible
        except Exception:  # pragma: no cover - a safety net: the frame loop goes on
            log.exception("indicator: unexpected error")

    def _buzz(self):
        out = self.outputs.get("buzzer")
        if out is None or out.device is None or self._closed:
            return
        now = self.clock()
        if self._last_buzz is not None and now - self._last_buzz < self.config.cooldown_s:
            log.debug("buzzer in cooldown")
            return
        if self._pattern is not None and self._pattern[0].is_alive():
            log.debug("buzzer pattern still playing")
            return
        self._last_buzz = now
        stop = threading.Event()
        thread = threading.Thread(target=self.play_pattern, args=(stop.wait,),
                                  name="maskdet-buzzer", daemon=True)
        self._pattern = (thread, stop)
        thread.start()

    def play_pattern(self, wait):
        """The buzzer's pattern (`beeps` times `on_s` on, `off_s` off), timed by `wait(seconds)`,
        which returns True to stop early; the buzzer is off at the end. True when every write
        worked."""
        out = self.outputs.get("buzzer")
        if out is None or out.device is None:
            return False
        b = out.config
        ok = True
        try:
            for beep in range(b.beeps):
                ok = self.set("buzzer", True) and ok
                if wait(b.on_s):
                    break
                ok = self.set("buzzer", False) and ok
                if beep + 1 < b.beeps and wait(b.off_s):
                    break
        except Exception:  # pragma: no cover - a safety net: the pattern thread never dies noisily
            log.exception("indicator: unexpected error in the buzzer pattern")
            ok = False
        finally:
            ok = self._off(out) and ok
        return ok

    def _off(self, out):
        if out.device is None or out.device.closed:
            return True
        try:
            out.device.off()
            out.applied = False
            return True
        except Exception as exc:
            self._fault(out, exc)
            return False

    def all_off(self):
        """Every output off (a buzzer pattern stopped); True when every write worked."""
        self._stop_pattern()
        ok = True
        for out in self.outputs.values():
            ok = self._off(out) and ok
        return ok

    def wait_pattern(self, timeout=10.0):
        """Block until the buzzer pattern playing now (if any) has ended; False on timeout."""
        pattern = self._pattern
        if pattern is None:
            return True
        pattern[0].join(timeout)
        return not pattern[0].is_alive()

    def _stop_pattern(self, timeout=1.0):
        if self._pattern is not None:
            thread, stop = self._pattern
            stop.set()
            if thread is not threading.current_thread():
                thread.join(timeout)
            self._pattern = None

    def close(self):
        """Every output off and its pin released; safe to call twice, never raises."""
        if self._closed:
            return
        self._closed = True
        try:
            self.all_off()
        except Exception:  # pragma: no cover - a safety net
            log.exception("indicator: unexpected error turning the outputs off")
        for out in self.outputs.values():
            if out.device is None:
                continue
            try:
                out.device.close()
            except Exception as exc:
                self._fault(out, exc)
            out.device = None
