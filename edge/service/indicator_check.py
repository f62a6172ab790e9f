"""`maskdet test-indicator`: the walk-through an installer runs after wiring. The green LED, then the
red LED, then the buzzer's pattern, one step at a time, each announced; everything off at the end,
also after Ctrl-C or SIGTERM. It drives the pins through the service's own `Indicator` and the
config's `gpio` section, so what works here works in the service."""
import signal
import threading

from edge.errors import ConfigError
from edge.errors import GpioError
from edge.service.indicator import ROLES, WHAT, Indicator

EX_FAILED = 1
EX_USAGE = 64
EX_CONFIG = 78
EX_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}
NO_PINS = ("no indicator pin is configured: set gpio.green.pin, gpio.red.pin and/or gpio.buzzer.pin "
           "in the config file, e.g. `gpio: {green: {pin: 17}, red: {pin: 27}, buzzer: {pin: 22}}` "
           "(docs/wiring.md shows that wiring)")


def _catch_signals(stop, received):
    """SIGINT / SIGTERM set `stop` instead of killing the process with a light on; returns the
    handlers to restore. Only the main thread may install handlers: elsewhere nothing is caught."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, _frame):
        received.append(signum)
        stop.set()

    previous = {}
    for sig in EX_INTERRUPTED:
        previous[sig] = signal.signal(sig, handler)
    return previous


def _pattern_seconds(buzzer):
    return buzzer.beeps * buzzer.on_s + (buzzer.beeps - 1) * buzzer.off_s


def _step_text(out, seconds):
    low = "" if out.config.active_high else " (active low: the pin goes low to switch it on)"
    if out.role == "buzzer":
        b = out.config
        return (f"buzzer on {out.label}{low}: {b.beeps} beep(s) of {b.on_s:g} s, {b.off_s:g} s "
                f"apart: do you hear them?")
    return f"{out.name} for {seconds:g} s{low}: is it lit?"


def run_indicator_check(gpio_settings, seconds=2.0, pin_factory=None, out=print, wait=None,
                        err=None):
    """Walk through the configured outputs: green for `seconds`, red for `seconds`, then the
    buzzer's pattern (the step lasts at least `seconds`). `wait(seconds)` times the steps and
    returns True to stop early (default: a real wait that Ctrl-C and SIGTERM cut short);
    `pin_factory` as for `Indicator`. Every line goes to `out`, except why the check cannot run,
    which goes to `err` (default: `out`). Returns the exit status: 0 when
    every configured output could be driven, 1 when one failed, 78 without any configured pin or
    with a pin gpiozero does not accept, 69 when GPIO cannot be used here (not a Pi, no
    gpiozero), 130 / 143 after Ctrl-C / SIGTERM (everything off)."""
    err = err or out
    if not 0 < seconds <= 600:
        err(f"--seconds must be more than 0 and at most 600, not {seconds:g}")
        return EX_USAGE
    if not any(getattr(gpio_settings, role) is not None for role in ROLES):
        err(NO_PINS)
        return EX_CONFIG
    try:
        indicator = Indicator(gpio_settings, pin_factory)
    except (ConfigError, GpioError) as exc:
        err(f"cannot test the indicator: {exc}")
        return exc.exit_code
    stop, received = threading.Event(), []
    previous = _catch_signals(stop, received)
    pause = wait or stop.wait

    def interrupted_after(s):
        return bool(pause(s)) or stop.is_set()

    failed, interrupted = [], False
    try:
        out("testing the indicator, one output at a time (Ctrl-C stops, with everything off): " +
            ", ".join(f"{role} {o.label}" for role, o in indicator.outputs.items()))
        for role in ROLES:
            output = indicator.outputs.get(role)
            if output is None:
                out(f"{WHAT[role]}: not configured (gpio.{role}), skipped")
                continue
            if output.device is None:
                out(f"{output.name}: {output.fault}; is the maskdet service running and holding "
                    "the pin? (sudo systemctl stop maskdet) Skipped.")
                failed.append(role)
                continue
            out(_step_text(output, seconds))
            if role == "buzzer":
                ok = indicator.play_pattern(interrupted_after)
                rest = seconds - _pattern_seconds(output.config)
                stopped = stop.is_set() or (rest > 0 and interrupted_after(rest))
            else:
                ok = indicator.set(role, True)
                stopped = interrupted_after(seconds)
                ok = indicator.set(role, False) and ok
            if not ok:
                out(f"  {output.name} could not be driven: {output.fault or 'see the log'}")
                failed.append(role)
            if stopped:
                interrupted = True
                break
    finally:
        indicator.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if interrupted or stop.is_set():
        out("interrupted: all outputs off")
        return EX_INTERRUPTED[received[0] if received else signal.SIGINT]
    if failed:
        out(f"all outputs off; {', '.join(WHAT[r] for r in failed)} failed (see above): check the "
            "wiring and the pins in docs/wiring.md")
        return EX_FAILED
    out("done, all outputs off. An output that stayed dark or silent: check its polarity, resistor "
        "and active_high (docs/wiring.md)")
    return 0
