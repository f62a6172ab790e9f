"""`maskdet run`: cameras -> faces -> decisions -> lights, buzzer and MQTT, until SIGTERM.

The frame loop lives in `Daemon.run`: it takes the newest frame of each camera in turn, detects
its faces, classifies those the camera's people need (`analyse`: new and undecided people every
frame, a decided one now and then), folds the faces into that camera's tracks and decisions, and
hands the results to the indicator and the publisher, neither of which blocks. It pings the
systemd watchdog only while frames really flow, so a hung camera or accelerator gets the service
restarted.

`edge/service/run.py` runs it as a process (signals, start, reloads); `handover.py` decides what
a Daemon built by a reload takes over from the running one.

Around the frame loop, never on its path: the HTTP view (`http_view`) gets each analysed frame
through a latest-only slot and encodes in its own threads; snapshots (`snapshots`) are made,
published and kept in a thread of their own; the health (`health`) is read in a thread of its
own; commands (`commands`) arrive in paho's thread and only set flags. A fault in any of them is
logged and the door's light goes on.
"""
import dataclasses
import logging
import threading
import time
import uuid

import numpy as np

import edge
from edge.errors import MaskdetError
from edge.inference.pipeline import build_pipeline
from edge.service import payloads
from edge.service.camera import CameraWorker
from edge.service.commands import CommandHandler, Controls
from edge.service.health import HealthReader
from edge.service.http_view import HttpView
from edge.service.ignore_regions import IgnoreRegions
from edge.service.metrics import Family, Metrics, render
from edge.service.people import AlertCleared, PeopleInView
from edge.service.publisher import Publisher
from edge.service.snapshots import Snapshots
from edge.service.sources import create_source
from edge.service.handover import handover, http_token, use_settings
from edge.systemd_notify import notify, watchdog_interval

log = logging.getLogger(__name__)

STATE_EVERY_S = 5.0  # retained state is re-published at least this often (fps changes)
STALL_S = 30.0  # a camera with no frame and no error this long is hung: stop the watchdog pings
READY_TIMEOUT_S = 20.0  # one deadline for all cameras together (they open in parallel)
OPEN_POLL_S = 0.05
STOPPED = "maskdet stopped: this camera is not watched"
REMOVED = "camera removed from the configuration"
RECONNECTING = "maskdet reconnecting with new MQTT settings"
HEALTH_EVERY_S = 10.0  # the health reader's period (at most; the stats period when shorter)
STATE_KEYS = ("alert", "people", "without_mask", "camera_ok", "accelerator", "error", "paused",
              "muted")  # a change of any of these publishes the state at once
OUTBOX_PROBLEM_EVERY_S = 1.0  # the outbox's problem (behind its lock) is read at most this often
COUNTER_KEYS = {"fallbacks": int, "recoveries": int, "tpu_restarts": int, "cpu_seconds": float}


def on_the_wall_clock(happening):
    """A departure or an alert clearing with its monotonic times turned into wall-clock times
    (the people state times durations on the monotonic clock; events carry wall-clock times)."""
    offset = time.time() - time.monotonic()
    times = {f.name: getattr(happening, f.name) + offset for f in dataclasses.fields(happening)
             if f.name.endswith(("_at", "_seen"))}
    return dataclasses.replace(happening, **times)


def build_indicator(config, pin_factory=None):
    """The GPIO indicator, or None when no pin is configured."""
    gpio = config.gpio
    if not (gpio.green or gpio.red or gpio.buzzer):
        return None
    from edge.service.indicator import Indicator

    return Indicator(gpio, pin_factory)


def model_version(pipeline):
    """The classifier as events name it: `<model file>@<first 12 hex digits of its sha256>`,
    and `+<second model file>@<...>` for a pair (either file changed is another version)."""
    meta = getattr(getattr(pipeline, "classifier", None), "meta", None)
    if meta is None or not getattr(meta, "model_file", None):
        return "unknown"
    version = f"{meta.model_file}@{(meta.sha256 or '')[:12]}".rstrip("@")
    opinion = getattr(meta, "second_opinion", None)
    if opinion is not None:
        version += f"+{opinion.model_file}@{opinion.sha256[:12]}"
    return version


def accelerator_counters(pipeline):
    """The hook for the Edge TPU's counters: {model: {accelerator, fallbacks, recoveries,
    cpu_seconds, tpu_restarts, worker_pid}} from `pipeline.accelerator_counters()` (each
    `AcceleratedModel.counters()`), cleaned to the stats schema; {} when the pipeline has none
    or reading them fails (logged at DEBUG: stats and /metrics go on without them)."""
    read = getattr(pipeline, "accelerator_counters", None)
    if read is None:
        return {}
    try:
        raw = read() or {}
    except Exception:
        log.debug("the accelerator counters could not be read", exc_info=True)
        return {}
    out = {}
    for model, counters in raw.items():
        if not isinstance(counters, dict):
            continue
        clean = {k: kind(counters[k]) for k, kind in COUNTER_KEYS.items()
                 if isinstance(counters.get(k), (int, float)) and not isinstance(counters[k], bool)
                 and counters[k] >= 0}
        if counters.get("accelerator") in ("edgetpu", "cpu"):
            clean["accelerator"] = counters["accelerator"]
        pid = counters.get("worker_pid")
        clean["worker_pid"] = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
        out[str(model)] = clean
    return out


@dataclasses.dataclass
class Analysis:
    """One frame through the inference core as the daemon runs it: the FaceResults of the faces
    kept (in detection order), the detected faces an ignore region set apart, how many faces
    the classifier ran on and how many the schedule left out, and the stage timings (ms)."""

    faces: list
    ignored: list
    classified: int
    skipped: int
    timings_ms: dict


def analyse(pipeline, view, image, now, ignore=None):
    """Detect the faces of one frame, set apart those in an ignore region (`ignore`: an
    IgnoreRegions or None), and classify in one `pipeline.classify` call only the faces the
    camera's people need (`PeopleInView.plan_classification`); the others are `unknown` with
    why, and feed no decision."""
    start = time.perf_counter()
    detected = pipeline.detect(image)
    split = time.perf_counter()
    kept, ignored = ignore.split(image.shape, detected) if ignore is not None else (detected, [])
    plan = view.plan_classification(kept, now, image.shape)
    wanted = [face for face, why in zip(kept, plan) if why is None]
    classified = pipeline.classify(image, wanted) if wanted else []
    done = time.perf_counter()
    answers = iter(classified)
    faces = [next(answers) if why is None else pipeline.unclassified(image, face, why)
             for face, why in zip(kept, plan)]
    return Analysis(faces, ignored, sum(1 for r in classified if r.score is not None),
                    len(kept) - len(wanted),
                    {"detect": (split - start) * 1000.0, "classify": (done - split) * 1000.0})


class Daemon:
    """The running service for one configuration (a reload builds a new one).

    `stop` and `reload` are the process-wide requests (run_service passes its own; a Daemon used
    alone makes its own). `predecessor`: the Daemon this one replaces at a reload; what it can
    keep is taken over at `start`, after `predecessor.hand_over(self)`."""

    def __init__(self, config, pin_factory=None, publisher=None, stop=None, reload=None,
                 predecessor=None):
        self.config = config
        self.pin_factory = pin_factory
        self.stop_requested = stop if stop is not None else threading.Event()
        self.reload_requested = reload if reload is not None else threading.Event()
        self.pipeline = build_pipeline(config.detector, config.classifier, config.accelerator)
        self._kept = handover(predecessor, config)
        self.publisher = publisher or self._kept.publisher or \
            Publisher(config.mqtt, config.device_id, [c.name for c in config.cameras])
        if predecessor is not None and self.publisher is not self._kept.publisher and \
                predecessor.config.device_id == config.device_id:
            self.publisher.retire_cameras([c.name for c in predecessor.config.cameras])
        self.indicator = self._kept.indicator  # else opened by start()
        self.workers = {c.name: self._kept.workers.get(c.name) or
                        CameraWorker(c.name, create_source(c.source)) for c in config.cameras}
        self.views = {c.name: self._kept.views.get(c.name) or PeopleInView(c.name, config.decision)
                      for c in config.cameras}
        self.ignore = {c.name: IgnoreRegions(c.name, c.ignore_regions) for c in config.cameras}
        self.started_at = self._kept.started_at or time.time()
        self.latencies = {"detect": [], "classify": []}
        self._published_state = {}
        self._last_stats = time.monotonic()
        self._shut_down = False
        self.controls = self._kept.controls or Controls()
        self.metrics = self._kept.metrics or Metrics()
        self._classifier_seen = self._classifier_totals()  # at the last stats: (frames, faces)
        self.health = self._kept.health or HealthReader(
            config.mqtt.outbox_path, min(HEALTH_EVERY_S, config.mqtt.stats_interval_s))
        self.health.outbox_path = config.mqtt.outbox_path
        self.http = None
        if config.http.enabled:
            self.http = self._kept.http or HttpView(config.http, config.privacy, http_token(config))
        self.snapshots = None
        if config.snapshots.enabled:
            self.snapshots = Snapshots(config.snapshots, config.privacy,
                                       self.publisher.publish_snapshot, self.publisher.snapshot_topic)
        self.commands = CommandHandler(self.publisher.base, list(self.workers), self.controls,
                                       self.metrics)
        self.model = model_version(self.pipeline)
        self.frame_sizes = {}  # camera -> (width, height) of its last analysed frame
        self.last_stats = None  # the last stats payload (for /api/stats)
        self._outbox_problem = (None, -OUTBOX_PROBLEM_EVERY_S)  # (problem, when read)

    @property
    def keeps_connection(self):
        """True when this Daemon took over its predecessor's MQTT connection."""
        return self.publisher is self._kept.publisher

    def start(self):
        """Connect to the broker and open the lights (unless taken over), open every camera at
        once and wait for them with one deadline, run one inference, then tell systemd READY.
        Returns early, without READY, when a stop is requested meanwhile."""
        announce_snapshots = bool(self.snapshots and self.config.snapshots.publish)
        self.publisher.model_version = self.model
        self.publisher.set_command_handler(self.commands)
        if not self.keeps_connection:
            self.publisher.snapshots_announced = announce_snapshots
            self.publisher.start()
        elif (self.publisher.cameras != list(self.workers) or
              self.publisher.snapshots_announced != announce_snapshots):
            self.publisher.set_cameras(list(self.workers), announce_snapshots)
        if self.indicator is None:
            self.indicator = build_indicator(self.config, self.pin_factory)
        for view in self.views.values():
            use_settings(view, self.config.decision)
        for worker in self.workers.values():
            if not worker.started:
                worker.start()
        self._start_around_the_loop()
        self._wait_for_cameras(READY_TIMEOUT_S)
        if self.stop_requested.is_set():
            return
        self.pipeline.warm_up()
        notify("READY=1\nSTATUS=watching " + ", ".join(self.workers))
        log.info("maskdet ready: cameras %s, classifier on %s", ", ".join(self.workers),
                 self.pipeline.placements()["classifier"].accelerator)

    def _start_around_the_loop(self):
        """The health reader, snapshots and the HTTP view: each one's fault is logged and the
        service goes on without it."""
        for what, start in (("health reader", self.health.start),
                            ("snapshots", self.snapshots and self.snapshots.start),
                            ("HTTP view", self.http and self._start_http)):
            if not start:
                continue
            try:
                start()
            except Exception:
                log.exception("the %s could not be started; the detector goes on without it", what)

    def _start_http(self):
        self.http.set_cameras(list(self.workers))
        self.http.start(self)

    def _wait_for_cameras(self, timeout):
        """Wait until every camera gave a frame (or ended), at most `timeout` s for all of them
        together, or until a stop is requested; warn about each camera still silent.

        It polls instead of waiting on the stop request: a signal handler sets that Event, and
        Event.set from a handler deadlocks when the handler interrupts this thread inside
        Event.wait (the Event's lock is not reentrant)."""
        deadline = time.monotonic() + timeout
        waiting = list(self.workers.values())
        while waiting and not self.stop_requested.is_set():
            waiting = [w for w in waiting if not w.opened]
            left = deadline - time.monotonic()
            if not waiting or left <= 0:
                break
            time.sleep(min(OPEN_POLL_S, left))
        for worker in waiting:
            log.warning("camera %s gave no frame within %.0f s: %s", worker.name, timeout,
                        worker.error or "no answer")

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
                view.tick(time.monotonic())
            elif self.controls.paused(name):
                busy = True
                self.metrics.count_frame(name, analysed=False)
                view.forget_people(time.monotonic())  # nobody is followed while not watched
            else:
                busy = True
                self._process(frame, view)
            self._publish_happenings(name, view)
            self._publish_state(name, view, worker)
        self._show_alert()
        self._maybe_publish_stats()
        return busy

    def _process(self, frame, view):
        try:
            result = analyse(self.pipeline, view, frame.image, frame.seen_at,
                             self.ignore[frame.camera])
        except MaskdetError as exc:  # e.g. the accelerator is required and gone
            log.error("camera %s frame %d: %s", frame.camera, frame.number, exc)
            raise
        except Exception:  # a bad frame is reported, not fatal
            log.exception("camera %s frame %d could not be analysed", frame.camera, frame.number)
            return
        for stage, ms in result.timings_ms.items():
            self.latencies.setdefault(stage, []).append(ms)
            self.metrics.observe_latency(stage, ms)
        self.metrics.count_frame(frame.camera)
        self.metrics.count_faces(frame.camera, result.classified, result.skipped)
        height, width = frame.image.shape[:2]
        self.frame_sizes[frame.camera] = (width, height)
        decisions = view.observe(result.faces, frame.seen_at)
        if self.http is not None:
            self.http.offer(frame.camera, frame.number, frame.image, view.as_shown(result.faces),
                            result.ignored, self.ignore[frame.camera].polygons)
        every_box = [f.box for f in result.faces + result.ignored]
        for d in decisions:
            said = d.kind if d.reason in (None, d.kind) else f"{d.kind} ({d.reason})"
            log.info("camera %s: person %d %s (%.2f)", frame.camera, d.track_id, said, d.score)
            self._publish_decision(frame, d, every_box)

    def _context(self, camera):
        """The fields every event of `camera` carries (`payloads.event_context`)."""
        return payloads.event_context(self.frame_sizes.get(camera, (1, 1)), self.model,
                                      self.config.detector.type, edge.__version__)

    def _publish_decision(self, frame, d, faces):
        """A decision's event, with its snapshot requested first (so the event names it);
        `faces`: every face box of the frame (each is blurred in the snapshot)."""
        event_id = uuid.uuid4().hex
        context = self._context(frame.camera)
        if self.snapshots is not None and self.snapshots.wants(d.kind):
            context["snapshot"] = self.snapshots.request(event_id, frame.camera, frame.image,
                                                         d.box, d.kind, d.score, frame.captured_at,
                                                         faces, d.reason)
        self._publish_event(frame.camera, payloads.event(
            d.kind, frame.camera, d.track_id, d.score, d.box, self.config.device_id,
            now=frame.captured_at, event_id=event_id, context=context, reason=d.reason))

    def _publish_happenings(self, name, view):
        """Departures and alert clearings of a camera as events."""
        for happening in map(on_the_wall_clock, view.take_happenings()):
            if isinstance(happening, AlertCleared):
                log.info("camera %s: alert cleared after %.1f s", name,
                         happening.cleared_at - happening.started_at)
                event = payloads.alert_cleared(name, happening, self.config.device_id,
                                               self._context(name))
            else:
                event = payloads.person_left(name, happening, self.config.device_id,
                                             self._context(name))
            self._publish_event(name, event)

    def _publish_event(self, camera, event):
        self.publisher.publish_event(camera, event)
        self.metrics.count_event(camera, event["type"])

    def _state_payload(self, name):
        """A camera's state now: paused cameras show no alert and nobody in view; the outbox's
        problem, when there is one, is part of every camera's `error`."""
        view, worker = self.views[name], self.workers[name]
        placement = self.pipeline.placements()["classifier"]
        paused = self.controls.paused(name)
        problems = [p for p in (worker.error or placement.reason, self._outbox_trouble()) if p]
        return payloads.state(
            view.alert and not paused, view.seen, view.without_mask, 0 if paused else view.in_view,
            0.0 if paused else view.fps, placement.accelerator, worker.ok,
            "; ".join(problems) or None, paused=paused, muted=self.controls.muted(name))

    def _outbox_trouble(self):
        """The outbox's problem sentence, read at most once a second (it takes the outbox's
        lock, which its sender thread holds while it writes)."""
        problem, read_at = self._outbox_problem
        now = time.monotonic()
        if now - read_at >= OUTBOX_PROBLEM_EVERY_S:
            problem = getattr(self.publisher.outbox, "problem", None)
            self._outbox_problem = (problem, now)
        return problem

    def _publish_state(self, name, view, worker):
        payload = self._state_payload(name)
        key = tuple(payload[k] for k in STATE_KEYS)
        last = self._published_state.get(name)
        now = time.monotonic()
        if last and last[0] == key and now - last[1] < STATE_EVERY_S:
            return
        self._published_state[name] = (key, now)
        self.publisher.publish_state(name, payload)

    def _publish_final_state(self, name, why):
        """A camera's last retained state: no alert, not watched, and why."""
        view = self.views[name]
        try:
            accelerator = self.pipeline.placements()["classifier"].accelerator
            self.publisher.publish_state(name, payloads.state(
                False, view.seen, view.without_mask, 0, 0.0, accelerator, False, why,
                paused=self.controls.paused(name), muted=self.controls.muted(name)))
        except Exception:  # the lights and `offline` must still follow
            log.exception("camera %s: the final state could not be published", name)

    def _show_alert(self):
        """Red while a watched camera alerts, the buzzer only for a camera not muted."""
        if not self.indicator:
            return
        alerts = [name for name, v in self.views.items()
                  if v.alert and not self.controls.paused(name)]
        audible = any(not self.controls.muted(name) for name in alerts)
        self.indicator.show(bool(alerts), silent=bool(alerts) and not audible)

    def _maybe_publish_stats(self):
        now = time.monotonic()
        if now - self._last_stats < self.config.mqtt.stats_interval_s:
            return
        self._last_stats = now
        latency = {stage: {"median": round(float(np.median(v)), 2), "p90": round(float(np.percentile(v, 90)), 2)}
                   for stage, v in self.latencies.items() if v}
        self.latencies = {stage: [] for stage in self.latencies}
        outbox = self.publisher.outbox_status()
        extra = {"frames_analysed": self.metrics.frames_analysed(),
                 "events": self.metrics.events_by_type(), "outbox": outbox,
                 "accelerator": accelerator_counters(self.pipeline),
                 "sw_version": edge.__version__, "model": self.model,
                 "detector": self.config.detector.type, "classifier": self._classifier_load()}
        if self.health.latest is not None:
            extra["health"] = self.health.latest
        if self.snapshots is not None:
            extra["snapshots"] = self.snapshots.status()
        self.last_stats = payloads.stats(
            latency, {n: w.frames.dropped for n, w in self.workers.items()}, outbox["depth"],
            outbox["dropped"], time.time() - self.started_at, **extra)
        self.publisher.publish_stats(self.last_stats)

    def _classifier_totals(self):
        """(frames analysed, faces classified) since start, over every camera."""
        return sum(self.metrics.frames_analysed().values()), self.metrics.faces_classified()[0]

    def _classifier_load(self):
        """The stats' `classifier` section; its per-frame rate is over the interval since the
        last stats."""
        frames, classified = self._classifier_totals()
        last_frames, last_classified = self._classifier_seen
        self._classifier_seen = (frames, classified)
        return payloads.classifier_load(*self.metrics.faces_classified(), frames - last_frames,
                                        classified - last_classified)

    # -- what the HTTP view asks (from its own threads)

    def http_states(self):
        """{camera: its state now} (the MQTT state schema)."""
        return {name: self._state_payload(name) for name in list(self.workers)}

    def http_stats(self):
        """The last stats payload, or None before the first."""
        return self.last_stats

    def snapshot_file(self, snapshot_id):
        """The kept file of a snapshot, or None."""
        return self.snapshots.file_of(snapshot_id) if self.snapshots is not None else None

    def metrics_text(self):
        """`/metrics`: the Prometheus text format."""
        return render(self.metric_families())

    def metric_families(self):
        """The counters and histograms of the frame loop, and gauges read now from the parts."""
        families = self.metrics.families()
        dropped = Family("maskdet_frames_dropped_total", "counter",
                         "frames the camera queue dropped because the detector was busy")
        camera_up = Family("maskdet_camera_up", "gauge", "1 while the camera delivers frames")
        alert = Family("maskdet_alert", "gauge", "1 during the camera's alert")
        in_view = Family("maskdet_people_in_view", "gauge", "faces tracked now, less pictures")
        fps = Family("maskdet_fps", "gauge", "frames analysed per second (last 5 s)")
        paused = Family("maskdet_paused", "gauge", "1 while detection is paused")
        muted = Family("maskdet_muted", "gauge", "1 while the buzzer is muted")
        for name, worker in list(self.workers.items()):
            view = self.views[name]
            dropped.add(worker.frames.dropped, camera=name)
            camera_up.add(int(worker.ok), camera=name)
            alert.add(int(view.alert and not self.controls.paused(name)), camera=name)
            in_view.add(view.in_view, camera=name)
            fps.add(round(view.fps, 3), camera=name)
            paused.add(int(self.controls.paused(name)), camera=name)
            muted.add(int(self.controls.muted(name)), camera=name)
        families += [dropped, camera_up, alert, in_view, fps, paused, muted]
        families += self._outbox_families() + self._accelerator_families()
        families += self._health_families() + self._view_families()
        families.append(Family("maskdet_info", "gauge", "the software and models").add(
            1, version=edge.__version__, model=self.model, detector=self.config.detector.type))
        families.append(Family("maskdet_uptime_seconds", "gauge", "since the service started")
                        .add(round(time.time() - self.started_at, 1)))
        return families

    def _outbox_families(self):
        outbox = self.publisher.outbox_status()
        drops = Family("maskdet_outbox_dropped_total", "counter", "events the outbox dropped, by reason")
        for reason, n in sorted(outbox["drops"].items()):
            drops.add(n, reason=reason)
        return [Family("maskdet_outbox_depth", "gauge", "events waiting for the broker").add(outbox["depth"]),
                drops,
                Family("maskdet_outbox_on_disk", "gauge", "1 while the outbox is on disk, 0 in memory")
                .add(int(outbox["storage"] == "disk")),
                Family("maskdet_mqtt_connected", "gauge", "1 while connected to the broker")
                .add(int(self.publisher.connected.is_set()))]

    def _accelerator_families(self):
        on_tpu = Family("maskdet_model_on_edgetpu", "gauge", "1 while the model runs on the Edge TPU")
        for part, placement in self.pipeline.placements().items():
            on_tpu.add(int(placement.accelerator == "edgetpu"), model=part)
        fallbacks = Family("maskdet_tpu_fallbacks_total", "counter", "times a model left the Edge TPU")
        recoveries = Family("maskdet_tpu_recoveries_total", "counter", "times a model went back to it")
        restarts = Family("maskdet_tpu_restarts_total", "counter", "Edge TPU worker processes restarted")
        cpu = Family("maskdet_tpu_cpu_seconds_total", "counter",
                     "seconds on the CPU twin while the Edge TPU was wanted")
        for model, c in accelerator_counters(self.pipeline).items():
            fallbacks.add(c.get("fallbacks"), model=model)
            recoveries.add(c.get("recoveries"), model=model)
            restarts.add(c.get("tpu_restarts"), model=model)
            cpu.add(c.get("cpu_seconds"), model=model)
        return [on_tpu, fallbacks, recoveries, restarts, cpu]

    def _health_families(self):
        health = self.health.latest or {}
        throttled = health.get("throttled") or {}
        flags = Family("maskdet_throttled", "gauge", "1 while the Raspberry Pi firmware reports this")
        for flag in throttled.get("now", []):
            flags.add(1, flag=flag)
        load = health.get("load") or [None]
        memory = health.get("memory") or {}
        return [Family("maskdet_cpu_temperature_celsius", "gauge", "CPU temperature")
                .add(health.get("cpu_temperature_c")),
                flags,
                Family("maskdet_load1", "gauge", "1-minute load average").add(load[0]),
                Family("maskdet_memory_available_bytes", "gauge", "memory available").add(
                    memory.get("available_mb") and memory["available_mb"] * 1e6),
                Family("maskdet_outbox_disk_free_bytes", "gauge", "free space where the outbox is")
                .add(health.get("disk_free_mb") and health["disk_free_mb"] * 1e6)]

    def _view_families(self):
        families = []
        if self.http is not None:
            families.append(Family("maskdet_http_viewers", "gauge", "live views open").add(self.http.viewers))
        if self.snapshots is not None:
            status = self.snapshots.status()
            snaps = Family("maskdet_snapshots_total", "counter", "snapshots, by outcome")
            for outcome in ("made", "published", "dropped", "failed"):
                snaps.add(status[outcome], outcome=outcome)
            families += [snaps, Family("maskdet_snapshots_kept", "gauge", "snapshot files kept")
                         .add(status["kept"])]
        return families

    def _healthy(self):
        """Frames flow, or each silent camera is known to be down (and being reopened)."""
        now = time.monotonic()
        for worker in self.workers.values():
            if worker.finished or worker.error:
                continue
            if worker.last_frame_at is None or now - worker.last_frame_at > STALL_S:
                return False
        return True

    def hand_over(self, successor, drain_timeout=5.0):
        """Make way for `successor` (a reload): stop the cameras it does not keep, give each camera
        it drops (every camera, when it does not keep the connection) a final state, close the
        lights and the MQTT connection unless it keeps them. No STOPPING=1, and no `offline`
        while the connection is kept."""
        self._shut_down = True
        reconnect = self.publisher is not successor.publisher
        self._stop_around_the_loop(keep_http=self.http is successor.http, keep_health=True)
        for name, worker in self.workers.items():
            if successor.workers.get(name) is not worker:
                worker.stop()
            if name not in successor.workers:
                self._publish_final_state(name, REMOVED)
            elif reconnect:  # the new connection may use other topics (device id, prefix, broker)
                self._publish_final_state(name, RECONNECTING)
        if self.indicator is not None and self.indicator is not successor.indicator:
            self.indicator.close()
        if reconnect:
            log.warning("the mqtt settings changed: reconnecting to the broker (availability "
                        "goes offline and online once)")
            self.publisher.drain(drain_timeout)
            self.publisher.close()

    def discard(self):
        """Drop a Daemon built for a reload that does not happen (a stop came): close what it
        opened itself; what it would have taken over stays with its predecessor."""
        self._shut_down = True
        if self.http is not None and self.http is not self._kept.http:
            self.http.stop()
        self._close_pipeline()
        if not self.keeps_connection:
            self.publisher.close()

    def _stop_around_the_loop(self, keep_http=False, keep_health=False):
        """Stop the HTTP view (unless kept), make the queued snapshots and stop, stop the health
        reader (unless kept); never raises."""
        for what, stop in (("HTTP view", None if keep_http or self.http is None else self.http.stop),
                           ("snapshots", self.snapshots and self.snapshots.stop),
                           ("health reader", None if keep_health else self.health.stop)):
            if not stop:
                continue
            try:
                stop()
            except Exception:
                log.exception("stopping the %s failed", what)

    def _close_pipeline(self):
        """Stop the pipeline's Edge TPU workers, if it has any (never raises)."""
        close = getattr(self.pipeline, "close", None)
        if close is None:
            return
        try:
            close()
        except Exception:
            log.exception("closing the inference pipeline failed")

    def shutdown(self, drain_timeout=5.0):
        """The end of the service (once): STOPPING=1, cameras stopped, lights off, each camera's
        retained state made final (no alert, not watched, "maskdet stopped"), the outbox drained,
        then `offline`."""
        if self._shut_down:
            return
        self._shut_down = True
        notify("STOPPING=1")
        for worker in self.workers.values():
            worker.stop()
        if self.indicator:
            self.indicator.close()
        self._stop_around_the_loop()
        for name in self.workers:
            self._publish_final_state(name, STOPPED)
        self.publisher.drain(drain_timeout)
        self.publisher.close()
        self._close_pipeline()
