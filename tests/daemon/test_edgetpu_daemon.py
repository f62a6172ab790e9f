"""The daemon with an Edge TPU that fails mid-run and comes back: the stand-in libedgetpu (built
from C by the tests) in the worker process, a real broker, a shared video, mock pins."""
import json
import os
import shutil
import threading

from gpiozero.pins.mock import MockFactory

from edge.config.loader import load_yaml
from edge.config.schema import Config
from edge.service.daemon import Daemon
from tests.conftest import copy_shipped_classifier, Subscriber, shared_path
from tests.inference.edgetpu_stand_in import stand_in, stand_in_library  # noqa: F401  (fixtures)


def classifier_with_twin(folder):
    """The shipped classifier and an `_edgetpu` copy of it (runs on the stand-in's CPU kernels)."""
    copy_shipped_classifier(folder)
    shutil.copy(os.path.join(folder, "mask_classifier_int8.tflite"),
                os.path.join(folder, "mask_classifier_int8_edgetpu.tflite"))
    return os.path.join(folder, "mask_classifier.json")


def config(broker, tmp_path):
    video = shared_path("data", "videos", "one_unmasked.mp4")
    return load_yaml(Config, f"""
device_id: pi-tpu
cameras:
  - name: door
    source: {{type: opencv, url: {video}, fps: 25, realtime: true, loop: true}}
classifier: {{model: {classifier_with_twin(str(tmp_path / 'models'))}}}
accelerator: {{mode: auto}}
mqtt:
  host: {broker.host}
  port: {broker.port}
  outbox_path: ":memory:"
  stats_interval_s: 1
""", "tpu.yaml")


def payloads(messages, suffix):
    return [json.loads(p) for t, p, _ in messages if t.endswith(suffix)]


def test_an_edge_tpu_that_aborts_mid_run_falls_back_keeps_publishing_and_comes_back(
        broker, tmp_path, stand_in, monkeypatch):  # noqa: F811
    # The worker aborts (as libedgetpu does on a USB transfer error) after 30 inferences.
    monkeypatch.setenv("MASKDET_STAND_IN_FAULT", "abort")
    monkeypatch.setenv("MASKDET_STAND_IN_FAULT_AFTER", "30")
    sub = Subscriber(broker, "maskdet/#")
    daemon = Daemon(config(broker, tmp_path), pin_factory=MockFactory())
    loop = None
    try:
        daemon.start()
        assert daemon.pipeline.placements()["classifier"].accelerator == "edgetpu"
        loop = threading.Thread(target=daemon.run, name="frame-loop", daemon=True)
        loop.start()
        fell_back = sub.wait_for(lambda m: any(
            s["accelerator"] == "cpu" and "aborted" in (s["error"] or "")
            for s in payloads(m, "/door/state")), timeout=60)
        state = next(s for s in payloads(fell_back, "/door/state") if s["accelerator"] == "cpu")
        assert "USB" in state["error"], state  # the cause, in words a person can act on
        # The frame loop went on: the unmasked person is decided (on the Edge TPU or the CPU).
        sub.wait_for(lambda m: any(e["type"] == "no_mask" for e in payloads(m, "/door/event")),
                     timeout=60)
        # The "device" is replugged: the next worker runs without the fault and is taken back.
        monkeypatch.delenv("MASKDET_STAND_IN_FAULT")
        back = sub.wait_for(lambda m: any(
            s["accelerator"] == "edgetpu" for s in payloads(m, "/door/state")[
                payloads(m, "/door/state").index(state):]), timeout=60)
        assert payloads(back, "/door/state")[-1]["accelerator"] == "edgetpu"
        stats = sub.wait_for(lambda m: any(
            (s.get("accelerator") or {}) for s in payloads(m, "/stats")), timeout=10)
        counters = [s["accelerator"] for s in payloads(stats, "/stats") if s.get("accelerator")][-1]
        assert any(c.get("fallbacks", 0) >= 1 for c in counters.values()), counters
    finally:
        daemon.stop_requested.set()
        if loop is not None:
            loop.join(30)
        daemon.shutdown(drain_timeout=5)
        sub.close()
