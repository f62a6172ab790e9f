"""The daemon under a steady load: the shared videos looped as three cameras for some minutes,
a real broker and subscriber; frames per second, capture-to-event latency as the subscriber
sees it, and the resident memory over time."""
import json
import logging
import os
import tempfile
import threading
import time

import numpy as np

from edge.config import Config
from edge.config.loader import load_yaml
from edge.service.daemon import Daemon
from edge.paths import shared_path
from edge.bench.mosquitto import Mosquitto

log = logging.getLogger(__name__)

VIDEOS = {"unmasked": "one_unmasked.mp4", "masked": "one_masked.mp4", "mask_on": "putting_on_mask.mp4"}


def rss_mib():
    """This process's resident memory in MiB (Linux)."""
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _config(broker, work_dir, classifier_meta, threads):
    cameras = "\n".join(
        f"  - name: {name}\n    source: {{type: opencv, url: {shared_path('data', 'videos', video)}, "
        f"fps: 25, loop: true, realtime: true}}" for name, video in VIDEOS.items())
    model = f"  model: {classifier_meta}\n" if classifier_meta else ""
    return load_yaml(Config, f"""device_id: bench
cameras:
{cameras}
classifier:
{model}  min_face_size: 32
accelerator: {{mode: cpu, threads: {threads}}}
mqtt:
  host: {broker.host}
  port: {broker.port}
  outbox_path: {os.path.join(work_dir, 'outbox.db')}
  stats_interval_s: 10
""", "bench")


class _Subscriber:
    """Records every event the daemon publishes, with the time it arrived."""

    def __init__(self, broker):
        import paho.mqtt.client as mqtt

        self.events = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe("maskdet/bench/+/event", qos=1)
        self.client.on_message = lambda c, u, m: self.events.append((time.time(), json.loads(m.payload)))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def close(self):
        """Stop listening."""
        self.client.loop_stop()
        self.client.disconnect()


def _epoch(iso):
    import datetime

    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _wait_until_quiet(subscriber, quiet_s=1.0, timeout_s=15.0):
    """Wait until no event has arrived for `quiet_s` (the last ones are in), or `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    seen, since = len(subscriber.events), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.05)
        if len(subscriber.events) != seen:
            seen, since = len(subscriber.events), time.monotonic()


def _watch_memory(runner, minutes, started):
    """RSS samples [(seconds, MiB)] about ten times over the run (at most every 30 s)."""
    memory = []
    while runner.is_alive() and time.monotonic() - started < minutes * 60:
        runner.join(min(30.0, minutes * 60 / 10))
        memory.append((round(time.monotonic() - started), round(rss_mib(), 1)))
        log.info("daemon bench: %.0f s, RSS %.0f MiB", memory[-1][0], memory[-1][1])
    return memory


def run_daemon_bench(minutes, classifier_meta=None, threads=2):
    """Run the daemon for `minutes`; returns fps, latency and memory figures."""
    with tempfile.TemporaryDirectory() as work_dir:
        broker = Mosquitto(work_dir).start()
        subscriber = daemon = None
        try:
            subscriber = _Subscriber(broker)
            daemon = Daemon(_config(broker, work_dir, classifier_meta, threads))
            daemon.start()
            runner = threading.Thread(target=daemon.run, name="bench-daemon", daemon=True)
            started = time.monotonic()
            runner.start()
            memory = _watch_memory(runner, minutes, started)
            daemon.stop_requested.set()
            runner.join(30)
            elapsed = time.monotonic() - started
            frames = {name: view.frames for name, view in daemon.views.items()}
            dropped = {name: w.frames.dropped for name, w in daemon.workers.items()}
            classified, skipped = daemon.metrics.faces_classified()
            _wait_until_quiet(subscriber)
        finally:
            if daemon is not None:
                daemon.shutdown(drain_timeout=10)
            if subscriber is not None:
                subscriber.close()
            broker.stop()
    latencies = [(received - _epoch(e["time"])) * 1000.0 for received, e in subscriber.events]
    return {
        "minutes": minutes, "threads": threads, "cameras": list(VIDEOS),
        "frames_processed": frames, "frames_dropped": dropped,
        "fps_per_camera": {n: round(f / elapsed, 2) for n, f in frames.items()},
        "fps_total": round(sum(frames.values()) / elapsed, 2),
        "faces_classified": classified, "faces_skipped": skipped,
        "classifier_invokes_per_frame": round(classified / max(sum(frames.values()), 1), 3),
        "events": len(latencies),
        "capture_to_event_ms": {"median": round(float(np.median(latencies)), 1),
                                "p99": round(float(np.percentile(latencies, 99)), 1)} if latencies else None,
        "rss_mib": memory,
    }
