"""The indicator on gpiozero's own MockFactory: pin states and their timing."""
import time

import pytest

gpiozero = pytest.importorskip("gpiozero")
from gpiozero.pins.mock import MockFactory  # noqa: E402

from edge.service.indicator import Indicator  # noqa: E402
from edge.config.schema import BuzzerConfig, GpioConfig, PinConfig  # noqa: E402


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


def config(**kw):
    return GpioConfig(green=PinConfig(17), red=PinConfig(27, active_high=False),
                      buzzer=BuzzerConfig(22, on_s=0.05, off_s=0.05, beeps=2), **kw)


def test_clear_view_is_green_and_an_alert_is_red_with_a_buzz(factory):
    ind = Indicator(config(), factory)
    ind.show(False)
    assert factory.pin(17).state and factory.pin(27).state  # red active-low: high = off
    ind.show(True)
    assert not factory.pin(17).state and not factory.pin(27).state  # red on (pulled low)
    time.sleep(0.3)
    buzz = [s.state for s in factory.pin(22).states]
    assert buzz == [False, True, False, True, False]
    # MockPin timestamps are the time since the previous change: beeps of 50 ms, pauses of 50 ms
    assert all(0.03 < s.timestamp < 0.2 for s in factory.pin(22).states[2:])
    ind.close()


def test_the_buzzer_sounds_at_most_once_per_cooldown(factory):
    now = [0.0]
    ind = Indicator(config(cooldown_s=10), factory, clock=lambda: now[0])
    for t, alert in [(0, True), (1, False), (2, True), (12, False), (13, True)]:
        now[0] = t
        ind.show(alert)
        time.sleep(0.25)
    rises = sum(1 for s in factory.pin(22).states if s.state)
    assert rises == 4  # two buzzes of two beeps: at t=0 and t=13, not at t=2
    ind.close()


def test_outputs_are_off_after_close_and_absent_pins_are_fine(factory):
    ind = Indicator(GpioConfig(red=PinConfig(5)), factory)
    ind.show(True)
    assert factory.pin(5).state
    ind.close()
    assert not factory.pin(5).state
