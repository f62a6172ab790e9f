"""`maskdet run`: cameras -> faces -> decisions -> lights, buzzer and MQTT, until SIGTERM.

The frame loop lives in `Daemon.run`: it takes the newest frame of each camera in turn, runs the
inference core, folds the faces into that camera's tracks and decisions, and hands the results to
the indicator and the publisher, neither of which blocks. It pings the systemd watchdog only while
frames really flow, so a hung camera or accelerator gets the service restarted.
"""
import logging
import signal
import threading
import time

import numpy as np

from edge.config import load_config
from edge.errors import ConfigError, MaskdetError
from edge.inference.pipeline import build_pipeline
from edge.service import payloads
from edge.service.camera import CameraWorker
from edge.service.people import PeopleInView
from edge.service.publisher import Publisher
from edge.service.sources import create_source
from edge.service.systemd_notify import notify, watchdog_interval

log = logging.getLogger(__name__)

STATE_EVERY_S = 5.0  # retained state is re-published at least this often (fps changes)
STALL_S = 30.0  # a camera with no frame and no error this long is hung: stop the watchdog pings
READY_TIMEOUT_S = 20.0


def build_indicator(config, pin_factory=None):
    """The GPIO indicator, or None when no pin is configured."""
    gpio = config.gpio
    if not (gpio.green or gpio.red or gpio.buzzer):
        return None
    from edge.service.indicator import Indicator

    return Indicator(gpio, pin_factory)


class Daemon:
    """The running service: one instance per configuration (SIGHUP builds a new one)."""

    def __init__(self, config, pin_factory=None, publisher=None):
        self.config = config
        self.pipeline = build_pipeline(config.detector, config.classifier, config.accelerator)
        self.indicator = build_indicator(config, pin_factory)
        self.publisher = publisher or Publisher(config.mqtt, config.device_id,
                                                [c.name for c in config.cameras])
        self.workers = {c.name: CameraWorker(c.name, create_source(c.source)) for c in config.cameras}
        self.views = {c.name: PeopleInView(c.name, config.decision) for c in config.cameras}
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.started_at = time.time()
        self.latencies = {"detect": [], "classify": []}
        self._published_state = {}
        self._last_stats = time.monotonic()
        self._shut_down = False

    def start(self):
        """Open cameras and the broker connection, run one inference, then tell systemd READY."""
        self.publisher.start()
        for worker in self.workers.values():
            worker.start()
        for name, worker in self.workers.items():
            if not worker.wait_open(READY_TIMEOUT_S):
                log.warning("camera %s gave no frame within %.0f s: %s", name, READY_TIMEOUT_S,
                            worker.error or "no answer")
        self.pipeline.analyze(np.zeros((360, 640, 3), np.uint8))
        notify("READY=1\nSTATUS=watching " + ", ".join(self.workers))
        log.info("maskdet ready: cameras %s, classifier on %s", ", ".join(self.workers),
                 self.pipeline.placements()["classifier"].accelerator)

    def run(self):
        """The frame loop; returns when stopped, reloaded, or every file source has ended."""
        ping_every = watchdog_interval()
        last_ping = 0.0
        while not (self.stop_requested.is_set() or self.reload_requested.is_set()):
            busy = self._step()
            now = time.monotonic()
            if ping_every and now - last_ping >= ping_every and self._healthy():
                notify("WATCHDOG=1")
                last_ping = now
            if all(w.finished for w in self.workers.values()):
                log.info("every source has ended")
                break
            if not busy:
                time.sleep(0.005)

    def _step(self):
        """Process the waiting frame of each camera; True if any frame was processed."""
        busy = False
        for name, worker in self.workers.items():
            frame = worker.frames.get()
            view = self.views[name]
            if frame is None:
                view.tick(time.time())
            else:
                busy = True
                self._process(frame, view)
            self._publish_state(name, view, worker)
        self._show_alert()
        self._maybe_publish_stats()
        return busy

    def _process(self, frame, view):
        try:
            result = self.pipeline.analyze(frame.image)
        except MaskdetError as exc:  # e.g. the accelerator is required and gone
            log.error("camera %s frame %d: %s", frame.camera, frame.number, exc)
            raise
        except Exception:  # a bad frame is reported, not fatal
            log.exception("camera %s frame %d could not be analysed", frame.camera, frame.number)
            return
        for stage, ms in result.timings_ms.items():
            self.latencies[stage].append(ms)
        for d in view.observe(result.faces, frame.captured_at):
            event = payloads.event(d.kind, frame.camera, d.track_id, d.score, d.box,
                                   self.config.device_id, now=frame.captured_at)
            log.info("camera %s: person %d %s (%.2f)", frame.camera, d.track_id, d.kind, d.score)
            self.publisher.publish_event(frame.camera, event)

    def _publish_state(self, name, view, worker):
        placement = self.pipeline.placements()["classifier"]
        key = (view.alert, view.seen, view.without_mask, worker.ok, placement)
        last = self._published_state.get(name)
        now = time.monotonic()
        if last and last[0] == key and now - last[1] < STATE_EVERY_S:
            return
        self._published_state[name] = (key, now)
        self.publisher.publish_state(name, payloads.state(
            view.alert, view.seen, view.without_mask, view.in_view, view.fps,
            placement.accelerator, worker.ok, worker.error or placement.reason))

    def _show_alert(self):
        if self.indicator:
            self.indicator.show(any(v.alert for v in self.views.values()))

    def _maybe_publish_stats(self):
        now = time.monotonic()
        if now - self._last_stats < self.config.mqtt.stats_interval_s:
            return
        self._last_stats = now
        latency = {stage: {"median": round(float(np.median(v)), 2), "p90": round(float(np.percentile(v, 90)), 2)}
                   for stage, v in self.latencies.items() if v}
        self.latencies = {stage: [] for stage in self.latencies}
        outbox = self.publisher.outbox_status()
        self.publisher.publish_stats(payloads.stats(
            latency, {n: w.frames.dropped for n, w in self.workers.items()}, outbox["depth"],
            outbox["dropped"], time.time() - self.started_at))

    def _healthy(self):
        """Frames flow, or each silent camera is known to be down (and being reopened)."""
        now = time.time()
        for worker in self.workers.values():
            if worker.finished or worker.error:
                continue
            if worker.last_frame_at is None or now - worker.last_frame_at > STALL_S:
                return False
        return True

    def shutdown(self, drain_timeout=5.0):
        """Stop cameras, send what the outbox holds, publish offline, lights off (once)."""
        if self._shut_down:
            return
        self._shut_down = True
        notify("STOPPING=1")
        for worker in self.workers.values():
            worker.stop()
        self.publisher.drain(drain_timeout)
        self.publisher.close()
        if self.indicator:
            self.indicator.close()


def run_service(config_path, pin_factory=None):
    """Load the config and run until SIGTERM; SIGHUP reloads (a bad new config is refused and the
    running one kept). Returns the exit status."""
    config = load_config(config_path)
    logging.getLogger().setLevel(config.log_level)
    current = [Daemon(config, pin_factory)]
    signal.signal(signal.SIGTERM, lambda *_: current[0].stop_requested.set())
    signal.signal(signal.SIGINT, lambda *_: current[0].stop_requested.set())
    signal.signal(signal.SIGHUP, lambda *_: current[0].reload_requested.set())
    try:
        current[0].start()
        while True:
            daemon = current[0]
            daemon.run()
            if not daemon.reload_requested.is_set():
                return 0
            notify("RELOADING=1")
            try:
                new_config = load_config(config_path)
            except ConfigError as exc:
                log.error("reload refused, keeping the running configuration: %s", exc)
                daemon.reload_requested.clear()
                notify("READY=1")
                continue
            daemon.shutdown()
            current[0] = Daemon(new_config, pin_factory)
            current[0].start()
            log.info("configuration reloaded from %s", config_path)
    finally:  # also when the loop dies (e.g. a required Edge TPU is gone): lights off, offline
        current[0].shutdown()
