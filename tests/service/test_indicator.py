"""The indicator on gpiozero's own MockFactory: pin names, pin states and their order, GPIO faults
(a MockPin whose writes raise OSError), and the `maskdet test-indicator` walk-through."""
import errno
import itertools
import logging
import os
import signal
import sys
import threading
import time

import pytest

gpiozero = pytest.importorskip("gpiozero")
from gpiozero import Device  # noqa: E402
from gpiozero.pins.mock import MockFactory, MockPin  # noqa: E402

from edge.config import load_config  # noqa: E402
from edge.config.loader import load_yaml  # noqa: E402
from edge.config.schema import BuzzerConfig, GpioConfig, PinConfig  # noqa: E402
from edge.errors import ConfigError  # noqa: E402
from edge.paths import REPO_ROOT  # noqa: E402
from edge.errors import GpioError  # noqa: E402
from edge.service.indicator import (PHYSICAL, Indicator, bcm_of, describe_pin,  # noqa: E402
                                    parse_pin, pin_conflicts, pin_problem)
from edge.service.indicator_check import NO_PINS, run_indicator_check  # noqa: E402

GREEN, RED, BUZZER = 17, 27, 22


class FlakyPin(MockPin):
    """A real MockPin whose writes fail with OSError (EIO) while its name is in `broken`."""

    broken = set()

    def _set_state(self, value):
        if self.info.name in self.broken:
            raise OSError(errno.EIO, "Input/output error")
        super()._set_state(value)


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


@pytest.fixture
def flaky_factory():
    FlakyPin.broken = set()
    f = MockFactory(pin_class=FlakyPin)
    yield f
    FlakyPin.broken = set()
    f.reset()


@pytest.fixture
def thread_errors(monkeypatch):
    """Exceptions that escaped any thread (the buzzer pattern's must not)."""
    seen = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    return seen


def config(**kw):
    return GpioConfig(green=PinConfig(GREEN), red=PinConfig(RED, active_high=False),
                      buzzer=BuzzerConfig(BUZZER, on_s=0.05, off_s=0.05, beeps=2), **kw)


def errors_about(caplog, label):
    return [r for r in caplog.records if r.levelno >= logging.ERROR and label in r.getMessage()]


# --- the service's behaviour -------------------------------------------------------------------

def test_clear_view_is_green_and_an_alert_is_red_with_a_buzz(factory):
    ind = Indicator(config(), factory)
    ind.show(False)
    assert factory.pin(17).state and factory.pin(27).state  # red active-low: high = off
    ind.show(True)
    assert not factory.pin(17).state and not factory.pin(27).state  # red on (pulled low)
    assert ind.wait_pattern()
    buzz = [s.state for s in factory.pin(22).states]
    assert buzz == [False, True, False, True, False]
    # MockPin timestamps are the time since the previous change; the pattern never hurries
    # (only a lower bound: an upper one would measure the test machine's load)
    assert all(s.timestamp >= 0.04 for s in factory.pin(22).states[2:])
    ind.close()


def test_the_buzzer_sounds_at_most_once_per_cooldown(factory):
    now = [0.0]
    ind = Indicator(config(cooldown_s=10), factory, clock=lambda: now[0])
    for t, alert in [(0, True), (1, False), (2, True), (12, False), (13, True)]:
        now[0] = t
        ind.show(alert)
        assert ind.wait_pattern()
    rises = sum(1 for s in factory.pin(22).states if s.state)
    assert rises == 4  # two buzzes of two beeps: at t=0 and t=13, not at t=2
    ind.close()


def test_outputs_are_off_after_close_and_absent_pins_are_fine(factory):
    ind = Indicator(GpioConfig(red=PinConfig(5)), factory)
    ind.show(True)
    assert factory.pin(5).state
    ind.close()
    assert not factory.pin(5).state
    ind.close()  # twice is fine
    ind.show(False)  # and a late frame does not raise


def test_close_stops_a_buzz_in_the_middle_with_the_buzzer_off(factory):
    ind = Indicator(GpioConfig(buzzer=BuzzerConfig(BUZZER, on_s=5, off_s=5, beeps=3)), factory)
    ind.show(True)
    deadline = time.monotonic() + 5
    while not factory.pin(BUZZER).state and time.monotonic() < deadline:
        time.sleep(0.001)  # polled: the pattern thread has started the first beep
    assert factory.pin(BUZZER).state
    ind.close()
    assert not factory.pin(BUZZER).state
    assert [s.state for s in factory.pin(BUZZER).states] == [False, True, False]


# --- pin names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("pin", ["GPIO17", "BOARD11", "J8:11", 17, "BCM17", "WPI0", "17"])
def test_every_name_of_gpio17_drives_bcm_pin_17(factory, pin):
    assert parse_pin(pin) == pin and bcm_of(pin) == 17 and describe_pin(pin) == "GPIO17 (pin 11)"
    ind = Indicator(GpioConfig(green=PinConfig(pin)), factory)
    ind.show(False)
    assert factory.pin(17).state
    assert [p.state for n, p in factory.pins.items() if n.name != "GPIO17"] == []  # no other pin made
    ind.close()
    assert not factory.pin(17).state


@pytest.mark.parametrize("revision", ["a02082", "c03111", "c04170", "902120", "c03130"])
def test_the_accepted_names_are_exactly_gpiozeros_own(revision):
    """Pi 3B, 4B, 5, Zero 2 W, 400: every name gpiozero gives a header pin maps as gpiozero maps
    it, and no other spelling is accepted."""
    f = MockFactory(revision=revision)
    try:
        pins = f.board_info.headers["J8"].pins.values()
        gpio_names = {}
        for info in pins:
            for name in info.names:
                if "gpio" in info.interfaces:
                    gpio_names[name] = int(info.name[4:])
                else:
                    assert pin_problem(name) is not None, name
        for name, bcm in gpio_names.items():
            assert pin_problem(name) is None and bcm_of(name) == bcm, name
        candidates = [n for n in range(-1, 70)] + [f"{prefix}{n}" for prefix, n in itertools.product(
            ("", "GPIO", "BCM", "BOARD", "J8:", "WPI", "P1:", "gpio", "Gpio", "pin", "GPIO0"), range(0, 70))]
        accepted = {c for c in candidates if pin_problem(c) is None}
        assert accepted == {c for c in candidates if c in gpio_names}
    finally:
        f.close()


@pytest.mark.parametrize("value, hint", [
    ("GPIO99", "GPIO0-GPIO27"),
    ("pin7", "did you mean BOARD7 (physical pin 7, GPIO4) or GPIO7 (physical pin 26)?"),
    ("gpio17", "did you mean GPIO17?"),
    ("BOARD6", "physical pin 6 is GND, not a GPIO"),
    ("J8:1", "physical pin 1 is 3V3"),
    ("J8:41", "physical pins are 1-40"),
    ("WPI17", "wiringPi numbers"),
    (28, "0-27"),
    (17.0, "not float"),
    (True, "not bool"),
    ("", "not a pin name"),
])
def test_a_bad_pin_is_a_config_error_naming_it_and_the_accepted_forms(value, hint):
    with pytest.raises(ConfigError) as caught:
        parse_pin(value)
    message = str(caught.value)
    assert repr(value) in message and hint in message
    assert "ccepted: a BCM GPIO number 0-27 (17), or a name as gpiozero takes it: GPIO17 or BCM17" in message
    assert "BOARD11 or J8:11" in message and "WPI0" in message
    assert pin_problem(value) is not None
    with pytest.raises(ConfigError, match="[Aa]ccepted: a BCM GPIO number"):
        Indicator(GpioConfig(green=PinConfig(value)), MockFactory())


def test_two_names_of_one_gpio_are_a_conflict():
    problem = pin_conflicts({"green": PinConfig(17), "red": PinConfig("BOARD11"), "buzzer": None})
    assert "green and red both use GPIO17 (physical pin 11)" in problem and "'BOARD11'" in problem
    assert pin_conflicts({"green": PinConfig("GPIO17"), "red": PinConfig("J8:13"), "buzzer": None}) is None


def test_the_schema_loads_pin_numbers_and_names():
    got = load_yaml(GpioConfig, "green: {pin: 17}\nred: {pin: J8:13, active_high: false}\n")
    assert got.green.pin == 17 and got.red.pin == "J8:13" and bcm_of(got.red.pin) == 27
    assert load_yaml(GpioConfig, "green:\n  pin: GPIO17\n").green.pin == "GPIO17"
    with pytest.raises(ConfigError, match=r"green\.pin \(line 2\): the 40-pin header has GPIO0-GPIO27 "
                                          r"only.*\(got 'GPIO99'\)"):
        load_yaml(GpioConfig, "red: {pin: 27}\ngreen: {pin: GPIO99}\n", "x.yaml")


# --- GPIO faults -------------------------------------------------------------------------------

def test_a_failing_pin_is_logged_once_and_the_rest_goes_on(flaky_factory, caplog, thread_errors):
    caplog.set_level(logging.DEBUG, logger="edge.service.indicator")
    ind = Indicator(config(cooldown_s=0), flaky_factory)
    ind.show(False)
    FlakyPin.broken.add("GPIO27")  # the red LED's pin starts failing
    ind.show(True)  # no exception into the frame loop
    assert not flaky_factory.pin(GREEN).state  # green went off all the same
    assert ind.wait_pattern()
    assert sum(s.state for s in flaky_factory.pin(BUZZER).states) == 2  # and the buzzer beeped
    for alert in (False, True, True, False):
        ind.show(alert)
    errors = errors_about(caplog, "red LED on GPIO27 (pin 13)")
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "OSError" in errors[0].getMessage() and "check" in errors[0].getMessage()
    assert "gpio" in errors[0].getMessage() and "docs/wiring.md" in errors[0].getMessage()
    assert set(ind.faults) == {"red"}
    FlakyPin.broken.clear()  # the pin recovers: the next frame retries it
    ind.show(True)
    assert not flaky_factory.pin(RED).state and not ind.faults  # red on (active low)
    assert any("works again" in r.getMessage() for r in caplog.records)
    assert ind.wait_pattern()
    ind.close()
    assert thread_errors == []


def test_a_failing_buzzer_and_a_failing_close_never_raise(flaky_factory, caplog, thread_errors):
    ind = Indicator(config(), flaky_factory)
    FlakyPin.broken.add("GPIO22")
    ind.show(True)
    assert ind.wait_pattern()
    assert len(errors_about(caplog, "buzzer on GPIO22 (pin 15)")) == 1
    assert not flaky_factory.pin(RED).state  # the red LED is on regardless
    FlakyPin.broken.update({"GPIO17", "GPIO27"})
    ind.close()  # no exception at shutdown either
    assert len(errors_about(caplog, "red LED on GPIO27")) == 1
    assert thread_errors == []


def test_a_pin_that_cannot_be_opened_is_left_out(flaky_factory, caplog):
    FlakyPin.broken.add("GPIO27")
    ind = Indicator(config(), flaky_factory)
    assert "cannot be opened" in ind.faults["red"]
    assert len(errors_about(caplog, "red LED on GPIO27 (pin 13) cannot be opened")) == 1
    ind.show(True)
    ind.show(False)
    assert flaky_factory.pin(GREEN).state
    ind.close()
    assert not flaky_factory.pin(GREEN).state


def test_without_gpiozero_or_a_pin_factory_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiozero", None)
    with pytest.raises(GpioError, match=r"gpiozero cannot be imported .*pip install maskdet\[pi\]") as e:
        Indicator(config())
    assert e.value.exit_code == 69
    monkeypatch.undo()
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    with pytest.raises(GpioError, match=r"no GPIO pin factory works here .*no-such-factory.*"
                                        r"on the Raspberry Pi.*pip install maskdet\[pi\]"):
        Indicator(config())


# --- maskdet test-indicator --------------------------------------------------------------------

def absolute_changes(pin, start):
    """(time since `start`, state) of each change of a MockPin whose states were cleared at start."""
    t, out = 0.0, []
    for s in pin.states[1:]:
        t += s.timestamp
        out.append((start + t, s.state))
    return out


def test_the_walk_through_goes_green_then_red_then_buzzer_and_ends_all_off(factory):
    gpio = GpioConfig(green=PinConfig("GPIO17"), red=PinConfig("BOARD13"),
                      buzzer=BuzzerConfig("J8:15", on_s=0.05, off_s=0.05, beeps=2))
    pins = {"green": factory.pin(GREEN), "red": factory.pin(RED), "buzzer": factory.pin(BUZZER)}
    for pin in pins.values():
        pin.clear_states()  # one common start for the three timelines
    snapshots, lines = [], []
    term_handler = signal.getsignal(signal.SIGTERM)

    def wait(seconds):
        snapshots.append((seconds, {role: pin.state for role, pin in pins.items()}))
        time.sleep(0.002)  # the steps' order shows in the timestamps; durations are not measured
        return False

    status = run_indicator_check(gpio, 2.0, factory, lines.append, wait)
    assert status == 0
    on = {"green": (True, False, False), "red": (False, True, False), "buzzer": (False, False, True)}
    off = (False, False, False)
    assert [(s, tuple(states.values())) for s, states in snapshots] == [
        (2.0, on["green"]), (2.0, on["red"]), (0.05, on["buzzer"]), (0.05, off),
        (0.05, on["buzzer"]), (pytest.approx(1.85), off)]
    # gpiozero's own record: each LED on once, two beeps, every pin low at the end, in that order
    assert [s.state for s in pins["green"].states] == [False, True, False]
    assert [s.state for s in pins["red"].states] == [False, True, False]
    assert [s.state for s in pins["buzzer"].states] == [False, True, False, True, False]
    green, red, buzz = (absolute_changes(pins[r], 0.0) for r in ("green", "red", "buzzer"))
    assert green[-1][0] < red[0][0] and red[-1][0] < buzz[0][0]
    assert not any(pin.state for pin in pins.values())
    assert lines[1:4] == ["green LED on GPIO17 (pin 11) for 2 s: is it lit?",
                          "red LED on GPIO27 (pin 13) for 2 s: is it lit?",
                          "buzzer on GPIO22 (pin 15): 2 beep(s) of 0.05 s, 0.05 s apart: do you hear them?"]
    assert lines[-1].startswith("done, all outputs off")
    assert signal.getsignal(signal.SIGTERM) is term_handler  # handlers restored


def test_an_active_low_output_is_announced_and_ends_high(factory):
    lines = []
    status = run_indicator_check(GpioConfig(red=PinConfig(RED, active_high=False)), 1, factory,
                                 lines.append, lambda s: False)
    assert status == 0
    assert "red LED on GPIO27 (pin 13) for 1 s (active low: the pin goes low to switch it on): " \
           "is it lit?" in lines
    assert [s.state for s in factory.pin(RED).states] == [False, True, False, True]  # off, on, off
    assert factory.pin(RED).state  # off = high


def test_absent_pins_are_skipped_with_a_line(factory):
    lines = []
    status = run_indicator_check(GpioConfig(red=PinConfig(RED)), 1, factory, lines.append, lambda s: False)
    assert status == 0
    assert "green LED: not configured (gpio.green), skipped" in lines
    assert "buzzer: not configured (gpio.buzzer), skipped" in lines
    assert [p.info.name for p in factory.pins.values()] == ["GPIO27"]


def test_without_any_pin_it_says_what_to_set_and_exits_78():
    lines = []
    assert run_indicator_check(GpioConfig(), 1, None, lines.append, lambda s: False) == 78
    assert lines == [NO_PINS] and "gpio.green.pin" in NO_PINS


def test_a_bad_pin_name_exits_78(factory):
    lines = []
    assert run_indicator_check(GpioConfig(green=PinConfig("GPIO99")), 1, factory, lines.append) == 78
    assert len(lines) == 1 and "'GPIO99'" in lines[0]


def test_not_on_a_pi_it_says_what_to_install_in_one_line(monkeypatch):
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    lines = []
    assert run_indicator_check(config(), 1, None, lines.append, lambda s: False) == 69
    assert len(lines) == 1 and "pip install maskdet[pi]" in lines[0] and "Raspberry Pi" in lines[0]
    monkeypatch.setitem(sys.modules, "gpiozero", None)
    lines.clear()
    assert run_indicator_check(config(), 1, None, lines.append, lambda s: False) == 69
    assert len(lines) == 1 and "pip install maskdet[pi]" in lines[0]


def test_stopping_early_leaves_everything_off(factory):
    calls = []

    def wait(seconds):
        calls.append(seconds)
        return len(calls) == 2  # stop during the red step

    lines = []
    assert run_indicator_check(config(), 2, factory, lines.append, wait) == 130
    assert lines[-1] == "interrupted: all outputs off"
    assert not factory.pin(GREEN).state and factory.pin(RED).state  # red is active low: off = high
    assert [s.state for s in factory.pin(BUZZER).states] == [False]  # the buzzer never sounded


def test_sigterm_during_a_step_turns_everything_off(factory):
    def wait(seconds):
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler) and handler not in (signal.SIG_DFL, signal.SIG_IGN)
        os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler before the next bytecode
        return False

    previous = signal.getsignal(signal.SIGTERM)
    lines = []
    assert run_indicator_check(config(), 2, factory, lines.append, wait) == 143
    assert lines[-1] == "interrupted: all outputs off"
    assert [s.state for s in factory.pin(GREEN).states] == [False, True, False]  # on, then off
    assert [s.state for s in factory.pin(BUZZER).states] == [False]
    assert signal.getsignal(signal.SIGTERM) is previous


def test_a_pin_that_fails_is_reported_and_the_others_still_tested(flaky_factory):
    FlakyPin.broken.add("GPIO27")
    lines = []
    assert run_indicator_check(config(), 1, flaky_factory, lines.append, lambda s: False) == 1
    assert any(line.startswith("red LED on GPIO27 (pin 13): cannot be opened: OSError") and
               "systemctl stop maskdet" in line for line in lines)
    assert any(s.state for s in flaky_factory.pin(GREEN).states)
    assert sum(s.state for s in flaky_factory.pin(BUZZER).states) == 2
    assert "red LED failed" in lines[-1]


def test_the_wiring_page_shows_the_example_configs_pins():
    gpio = load_config(os.path.join(REPO_ROOT, "systemd", "maskdet.example.yaml")).gpio
    with open(os.path.join(REPO_ROOT, "docs", "wiring.md"), encoding="utf-8") as f:
        page = f.read()
    for role in ("green", "red", "buzzer"):
        bcm = bcm_of(getattr(gpio, role).pin)
        assert f"`gpio.{role}.pin: {bcm}` | GPIO{bcm} | {PHYSICAL[bcm]} |" in page, role
    picture = os.path.join(REPO_ROOT, "docs", "wiring.png")
    assert 20_000 < os.path.getsize(picture) < 300_000  # tools/draw_wiring.py redraws it


def test_a_silent_alert_lights_red_stops_the_buzzer_and_retries_a_failed_pin(flaky_factory):
    ind = Indicator(config(cooldown_s=0), flaky_factory)
    ind.show(True)  # audible: the pattern starts
    ind.show(True, silent=True)  # muted meanwhile: the pattern stops, the buzzer is off
    assert not flaky_factory.pin(BUZZER).state
    assert not flaky_factory.pin(RED).state  # red on (active low)
    ind.show(False)
    FlakyPin.broken.add("GPIO27")  # the red LED's pin fails ...
    ind.show(True, silent=True)
    FlakyPin.broken.clear()  # ... and recovers: the next frame writes it
    ind.show(True, silent=True)
    assert not flaky_factory.pin(RED).state and not ind.faults
    assert ind.wait_pattern()
    ind.close()
