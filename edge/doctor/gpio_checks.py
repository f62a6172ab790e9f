"""The GPIO check of `maskdet doctor`: each configured pin (the lights, the buzzer) can be
claimed through gpiozero, as the service's own Indicator claims them, then released (off)."""
import re

from edge.doctor.findings import FAIL, OK, WARN, Finding, one_line, quiet_logging


def check_gpio(gpio, pin_factory=None):
    """Each configured pin can be claimed through gpiozero (then released, off): the service's
    own Indicator opens them. gpiozero missing, or no pin factory (not a Raspberry Pi), is said."""
    from edge.errors import ConfigError
    from edge.errors import GpioError
    from edge.service.indicator import ROLES, WHAT, Indicator

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
        return _pin_faults(name, faults, labels)
    return Finding(name, OK, f"{', '.join(labels[r] for r in configured)}: claimed and released "
                   f"(pin factory {factory})")


def _pin_faults(name, faults, labels):
    """The finding for pins that could not be claimed: held by another program, or broken."""
    busy = all(re.search(r"busy|in use", f, re.I) for f in faults.values())
    detail = "; ".join(f"{labels[r]}: {f}" for r, f in faults.items())
    if busy:
        return Finding(name, WARN, f"{detail}: held by another program",
                       "the maskdet service holds its pins while it runs: stop it (sudo "
                       "systemctl stop maskdet) to test them, or run `maskdet test-indicator`")
    return Finding(name, FAIL, detail, "check that no other program or dtoverlay uses the pin, "
                   "and that the user is in the gpio group (docs/wiring.md)")


def _factory_of(indicator):
    for out in indicator.outputs.values():
        if out.device is not None:
            return out.device.pin_factory
    return None
