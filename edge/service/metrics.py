"""Counters and histograms of the frame loop, and the Prometheus text format (0.0.4) of
`/metrics`, written here in a few lines rather than with a client library.

The frame loop records with `Metrics` (a lock held for a few additions); the HTTP server's
thread renders. Gauges (outbox depth, accelerator, health ...) are read when rendered: the daemon
composes them in `Daemon.metric_families` from its parts.
"""
import math
import threading
from dataclasses import dataclass, field

# Stage latency buckets, seconds: 1 ms to 5 s (a Pi 4 on the CPU takes 10-100 ms a stage).
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Family:
    """One metric family: name, type (counter, gauge, histogram), help, and its samples as
    (suffix, labels, value); a histogram's samples are its _bucket, _sum and _count lines."""

    name: str
    kind: str
    help: str
    samples: list = field(default_factory=list)

    def add(self, value, suffix="", **labels):
        """Add one sample; returns the family."""
        self.samples.append((suffix, labels, value))
        return self


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value):
    if value is None:
        return "NaN"
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 2 ** 53 else repr(value)


def render(families):
    """The Prometheus text exposition format of `families` (a family without samples is left
    out; a sample whose value is None is left out)."""
    lines = []
    for family in families:
        samples = [s for s in family.samples if s[2] is not None]
        if not samples:
            continue
        lines.append(f"# HELP {family.name} {_escape(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for suffix, labels, value in samples:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{family.name}{suffix}{{{text}}} {_number(value)}" if text
                         else f"{family.name}{suffix} {_number(value)}")
    return "\n".join(lines) + "\n"


class Histogram:
    """Cumulative buckets, a sum and a count (not thread-safe alone: `Metrics` locks)."""

    def __init__(self, buckets=LATENCY_BUCKETS_S):
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value):
        """Count one value."""
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break
        self.sum += value
        self.count += 1

    def samples(self, family, **labels):
        """Add this histogram's _bucket, _sum and _count samples to `family`."""
        running = 0
        for bound, n in zip(self.buckets, self.counts):
            running += n
            family.add(running, "_bucket", **labels, le=_number(bound))
        family.add(self.count, "_bucket", **labels, le="+Inf")
        family.add(self.sum, "_sum", **labels)
        family.add(self.count, "_count", **labels)


class Metrics:
    """What the frame loop counts, since the service started (kept across reloads)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.latency = {}  # stage -> Histogram
        self.frames = {}  # camera -> frames analysed
        self.skipped = {}  # camera -> frames not analysed (paused)
        self.classified = {}  # camera -> faces the classifier ran on
        self.faces_skipped = {}  # camera -> faces the schedule left out (decided people ...)
        self.events = {}  # (camera, type) -> count
        self.commands = {}  # result (accepted, rejected reason) -> count

    def observe_latency(self, stage, ms):
        """One stage's time for one frame, in milliseconds."""
        with self._lock:
            self.latency.setdefault(stage, Histogram()).observe(ms / 1000.0)

    def count_frame(self, camera, analysed=True):
        """One frame of `camera` analysed (or, analysed=False, skipped)."""
        with self._lock:
            table = self.frames if analysed else self.skipped
            table[camera] = table.get(camera, 0) + 1

    def count_faces(self, camera, classified, skipped):
        """One analysed frame's faces: how many were classified, how many left out."""
        with self._lock:
            self.classified[camera] = self.classified.get(camera, 0) + classified
            self.faces_skipped[camera] = self.faces_skipped.get(camera, 0) + skipped

    def faces_classified(self):
        """(faces classified, faces left out) since start, over every camera."""
        with self._lock:
            return sum(self.classified.values()), sum(self.faces_skipped.values())

    def count_event(self, camera, kind):
        """One event published."""
        with self._lock:
            self.events[(camera, kind)] = self.events.get((camera, kind), 0) + 1

    def count_command(self, result):
        """One command received: `accepted` or why it was rejected."""
        with self._lock:
            self.commands[result] = self.commands.get(result, 0) + 1

    def events_by_type(self):
        """{event type: count} over every camera."""
        with self._lock:
            out = {}
            for (_, kind), n in self.events.items():
                out[kind] = out.get(kind, 0) + n
            return out

    def frames_analysed(self):
        """{camera: frames analysed}."""
        with self._lock:
            return dict(self.frames)

    def families(self):
        """The counter and histogram families (a consistent copy)."""
        with self._lock:
            latency = Family("maskdet_stage_latency_seconds", "histogram",
                             "time of each inference stage per frame")
            for stage, histogram in sorted(self.latency.items()):
                histogram.samples(latency, stage=stage)
            frames = Family("maskdet_frames_analysed_total", "counter", "frames analysed")
            for camera, n in sorted(self.frames.items()):
                frames.add(n, camera=camera)
            skipped = Family("maskdet_frames_skipped_total", "counter",
                             "frames not analysed because detection is paused")
            for camera, n in sorted(self.skipped.items()):
                skipped.add(n, camera=camera)
            classified = Family("maskdet_faces_classified_total", "counter",
                                "faces the mask classifier ran on")
            for camera, n in sorted(self.classified.items()):
                classified.add(n, camera=camera)
            faces_skipped = Family("maskdet_faces_skipped_total", "counter",
                                   "faces not classified: the person is decided (checked again "
                                   "later), a picture, or cut by the frame's edge")
            for camera, n in sorted(self.faces_skipped.items()):
                faces_skipped.add(n, camera=camera)
            events = Family("maskdet_events_total", "counter", "events published, by type")
            for (camera, kind), n in sorted(self.events.items()):
                events.add(n, camera=camera, type=kind)
            commands = Family("maskdet_commands_total", "counter",
                              "commands received on <prefix>/<camera>/set, by result")
            for result, n in sorted(self.commands.items()):
                commands.add(n, result=result)
        return [latency, frames, skipped, classified, faces_skipped, events, commands]
