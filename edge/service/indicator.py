"""The entrance indicator through gpiozero: a green LED while the view is clear, a red LED during
an alert, and a buzzer pattern when an alert starts (at most once per cooldown). gpiozero runs
blinking in its own thread, so nothing here blocks the frame loop."""
import logging
import time

log = logging.getLogger(__name__)


class Indicator:
    """Green / red LEDs and a buzzer, each optional, driven by one `show(alert)` call per frame."""

    def __init__(self, gpio_config, pin_factory=None, clock=time.monotonic):
        try:
            from gpiozero import LED, Buzzer
        except ImportError as exc:
            raise ImportError(f"gpiozero is missing ({exc}): pip install maskdet[pi]") from exc
        self.config = gpio_config
        self.clock = clock
        self._last_buzz = None
        self._alert = None

        def make(cls, pin):
            return cls(pin.pin, active_high=pin.active_high, initial_value=False,
                       pin_factory=pin_factory) if pin else None

        self.green = make(LED, gpio_config.green)
        self.red = make(LED, gpio_config.red)
        self.buzzer = make(Buzzer, gpio_config.buzzer)

    def show(self, alert):
        """Reflect the alert state; changes only touch the pins when the state changes."""
        if alert == self._alert:
            return
        self._alert = alert
        if self.green:
            self.green.value = not alert
        if self.red:
            self.red.value = alert
        if alert:
            self._buzz()

    def _buzz(self):
        if not self.buzzer:
            return
        now = self.clock()
        if self._last_buzz is not None and now - self._last_buzz < self.config.cooldown_s:
            log.debug("buzzer in cooldown")
            return
        self._last_buzz = now
        b = self.config.buzzer
        self.buzzer.blink(on_time=b.on_s, off_time=b.off_s, n=b.beeps, background=True)

    def close(self):
        """Every output off, devices released."""
        for device in (self.buzzer, self.red, self.green):
            if device is not None:
                device.off()
                device.close()
