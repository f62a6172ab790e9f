"""What the installer and the monitor see, against a running daemon on the shared videos, a
real mosquitto and mock pins: the HTTP view (page in a real headless Chromium, MJPEG, snapshot,
/api/state, /api/stats, /metrics, the token), event snapshots over MQTT and on disk with their
bounds, the new events and stats, Home Assistant discovery, and commands that mute and pause."""
import json
import os
import threading
import time
import urllib.error
import urllib.request

import cv2
import jsonschema
import numpy as np
import pytest

pytest.importorskip("gpiozero")
from gpiozero.pins.mock import MockFactory  # noqa: E402

from edge.config.loader import load_yaml  # noqa: E402
from edge.config.schema import Config  # noqa: E402
from edge.inference.annotate import jpeg_comment  # noqa: E402
from edge.service import payloads  # noqa: E402
from edge.service.daemon import Daemon  # noqa: E402
from tests.conftest import shared_path  # noqa: E402
from tests.service.mjpeg import read_mjpeg  # noqa: E402
from tests.service.test_metrics import parse as parse_metrics  # noqa: E402
from tests.daemon.configs import BUZZER, GREEN, RED, service_sections  # noqa: E402

TOKEN = "a-test-token-0123456789"
CHROMIUM = "/usr/bin/chromium"


class Recorder:
    """A paho client that keeps every message under a filter as (topic, bytes, retained)."""

    def __init__(self, broker, topic="maskdet/#"):
        import paho.mqtt.client as mqtt

        self.messages = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, client, userdata, message):
        with self._cond:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
            self._cond.notify_all()

    def wait_for(self, predicate, timeout=30.0):
        with self._cond:
            self._cond.wait_for(lambda: predicate(self.messages), timeout)
            return list(self.messages)

    def json(self, suffix):
        return [json.loads(p) for t, p, _ in list(self.messages) if t.endswith(suffix)]

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def config_for(broker, tmp_path, video="one_unmasked.mp4", loop=True, extra=""):
    return load_yaml(Config, f"""
device_id: pi-live
cameras:
  - name: door
    source: {{type: opencv, url: {shared_path('data', 'videos', video)}, fps: 25, loop: {str(loop).lower()}}}
{service_sections(broker, tmp_path)}{extra}""", "test.yaml")


class Running:
    """A Daemon whose frame loop runs in a thread until `stop`."""

    def __init__(self, config, factory):
        self.daemon = Daemon(config, pin_factory=factory)
        self.daemon.start()
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.daemon.stop_requested.set()
        self.thread.join(30)
        self.daemon.shutdown(drain_timeout=30)


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


def http_get(port, path, token=TOKEN, timeout=10):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def wait_until(condition, timeout=30.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def validate(kind, payload):
    jsonschema.validate(payload, payloads.load_schema(kind), format_checker=jsonschema.FormatChecker())


# -- the HTTP view -------------------------------------------------------------------------------

@pytest.fixture
def live(broker, tmp_path, factory, monkeypatch):
    monkeypatch.setenv("MASKDET_HTTP_TOKEN", TOKEN)
    running = Running(config_for(broker, tmp_path, extra="""
http: {enabled: true, listen: "127.0.0.1:0", max_fps: 8, max_width: 640}
"""), factory)
    yield running
    running.stop()


def test_the_http_view_of_a_running_daemon(live):
    port = live.daemon.http.port
    status, headers, _ = http_get(port, "/api/state", token=None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    assert http_get(port, "/door/live.mjpeg", token="wrong-token-wrong")[0] == 401

    def analysing():
        status, _, body = http_get(port, "/api/state")
        return status == 200 and json.loads(body)["door"]["fps"] > 0 and json.loads(body)

    states = wait_until(analysing, what="frames analysed")
    assert list(states) == ["door"]
    validate("state", states["door"])

    response, parts = read_mjpeg("127.0.0.1", port, "/door/live.mjpeg", 5,
                                 {"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200 and len(parts) == 5
    frames = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR) for p in parts]
    assert all(f.shape == (360, 640, 3) for f in frames)  # 1280x720 shrunk to max_width

    status, headers, body = http_get(port, "/door/snapshot.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (360, 640, 3)

    status, headers, body = http_get(port, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    metrics = parse_metrics(body.decode())
    analysed = metrics["maskdet_frames_analysed_total"]["samples"]
    assert analysed[0][1] == '{camera="door"}' and analysed[0][2] > 0
    for family in ("maskdet_stage_latency_seconds", "maskdet_frames_dropped_total",
                   "maskdet_outbox_depth", "maskdet_outbox_on_disk", "maskdet_model_on_edgetpu",
                   "maskdet_http_viewers", "maskdet_info", "maskdet_camera_up"):
        assert family in metrics, family
    stages = {s[1] for s in metrics["maskdet_stage_latency_seconds"]["samples"]}
    assert any('stage="detect"' in s for s in stages) and any('stage="classify"' in s for s in stages)

    def stats():
        status, _, body = http_get(port, "/api/stats")
        return status == 200 and json.loads(body)

    stats = wait_until(stats, what="the first stats")
    validate("stats", stats)
    assert stats["frames_analysed"]["door"] > 0 and stats["outbox"]["storage"] == "disk"
    assert stats["health"]["throttled"] is None  # not a Raspberry Pi: null, never a failure
    assert stats["sw_version"] and stats["model"].startswith("mask_classifier_int8.tflite@")


def test_the_page_shows_the_camera_image_in_a_headless_browser(live, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"needs {CHROMIUM} (apt-get install chromium; tools/setup.sh --dev installs it)")
    playwright = pytest.importorskip("playwright.sync_api")
    port = live.daemon.http.port
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            assert page.request.get(f"http://127.0.0.1:{port}/").status == 401  # no token: refused
            page.goto(f"http://127.0.0.1:{port}/?token={TOKEN}")  # sets the cookie, then /
            assert page.url == f"http://127.0.0.1:{port}/"
            page.wait_for_function(
                "() => { const i = document.querySelector('#camera-door img');"
                " return i && i.complete && i.naturalWidth > 0; }", timeout=30000)
            size = page.evaluate("() => { const i = document.querySelector('#camera-door img');"
                                 " return [i.naturalWidth, i.naturalHeight]; }")
            assert size == [640, 360]
            page.wait_for_function("() => document.querySelector('#camera-door figcaption')"
                                   ".textContent.includes('fps')", timeout=30000)
            caption = page.text_content("#camera-door figcaption")
            assert caption.startswith("door:") and "in view" in caption
            shot = tmp_path / "page.png"
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    image = cv2.imread(str(shot))
    assert image is not None and float(image.std()) > 10  # a picture, not an empty page


# -- events, snapshots, stats, discovery over MQTT ---------------------------------------------

def test_snapshots_new_events_stats_and_discovery_over_mqtt(broker, tmp_path, factory):
    folder = tmp_path / "snaps"
    folder.mkdir()
    stale = folder / ("20000101T000000000000Z_door_" + "0" * 32 + ".jpg")
    stale.write_bytes(b"\xff\xd8\xff old")
    os.utime(stale, (time.time() - 3 * 3600, time.time() - 3 * 3600))
    recorder = Recorder(broker, "#")
    config = config_for(broker, tmp_path, "putting_on_mask.mp4", loop=False, extra=f"""
  home_assistant: {{enabled: true}}
snapshots: {{enabled: true, keep: true, folder: {folder}, max_files: 2, max_age_h: 1}}
""")
    daemon = Daemon(config, pin_factory=factory)
    daemon.start()
    daemon.run()
    daemon.shutdown(drain_timeout=30)
    got = recorder.wait_for(lambda m: m and m[-1][1] == b"offline")
    events = recorder.json("/event")
    for event in events:
        validate("event", event)
        assert event["frame_size"] == [1280, 720] and event["detector"] == "yunet"
    kinds = [e["type"] for e in events]
    assert {"no_mask", "mask", "person_left", "alert_cleared"} <= set(kinds), kinds
    decisions = [e for e in events if e["type"] in ("no_mask", "mask")]
    assert all(e["snapshot"]["topic"] == "maskdet/pi-live/door/snapshot" for e in decisions)
    cleared = [e for e in events if e["type"] == "alert_cleared"][0]
    assert cleared["duration_s"] > 0 and "track_id" not in cleared
    left = [e for e in events if e["type"] == "person_left"]
    assert all(e["decision"] in ("mask", "no_mask") and e["duration_s"] >= 0 for e in left)

    snapshots = [(p, r) for t, p, r in got if t == "maskdet/pi-live/door/snapshot"]
    assert len(snapshots) == len(decisions)
    ids = [jpeg_comment(p).split()[2] for p, _ in snapshots]
    assert ids == [e["id"] for e in decisions]  # each JPEG names its event, in order
    kept = sorted(os.listdir(folder))
    assert len(kept) == 2 and not stale.exists()  # the bound on count, and on age
    newest = [e for e in decisions if e["snapshot"]["path"].endswith(kept[-1])][0]
    with open(newest["snapshot"]["path"], "rb") as handle:
        assert handle.read() == snapshots[-1][0]

    late = Recorder(broker, "maskdet/pi-live/door/snapshot")  # retained for Home Assistant
    retained = late.wait_for(lambda m: m)
    assert retained[0][2] and retained[0][1] == snapshots[-1][0]
    late.close()

    stats = recorder.json("/stats")
    for s in stats:
        validate("stats", s)
    assert stats[-1]["snapshots"]["made"] >= 1 and stats[-1]["events"]["no_mask"] >= 1

    discovery = {t: p for t, p, _ in got if t.startswith("homeassistant/")}
    image = json.loads(discovery["homeassistant/image/maskdet_pi_live_door_snapshot/config"])
    assert image["image_topic"] == "maskdet/pi-live/door/snapshot"
    assert len([p for p in discovery.values() if p]) == 9
    no_mask = json.loads(discovery["homeassistant/event/maskdet_pi_live_door_no_mask/config"])
    assert no_mask["state_topic"] == "maskdet/pi-live/door/event"
    recorder.close()


# -- commands ------------------------------------------------------------------------------------

def test_mute_and_pause_commands_on_a_running_daemon(broker, tmp_path, factory):
    recorder = Recorder(broker, "maskdet/pi-live/+/state")
    running = Running(config_for(broker, tmp_path, extra="""
  home_assistant: {enabled: true}
"""), factory)
    sender = recorder.client
    try:
        sender.publish("maskdet/pi-live/door/set", b'{"mute": true}', qos=1).wait_for_publish(10)
        sender.publish("maskdet/pi-live/door/set", b"\x00\xff" * 5000, qos=1).wait_for_publish(10)
        sender.publish("maskdet/pi-live/garage/set", b'{"pause": true}', qos=1).wait_for_publish(10)

        def last_state():
            states = recorder.json("/state")
            return states[-1] if states else {}

        wait_until(lambda: last_state().get("muted") and last_state().get("alert"),
                   timeout=60, what="a muted alert")
        wait_until(lambda: factory.pin(RED).state, what="the red light")
        assert not factory.pin(GREEN).state
        assert not any(s.state for s in factory.pin(BUZZER).states)  # muted: never a beep

        sender.publish("maskdet/pi-live/door/set", b'{"pause": true}', qos=1).wait_for_publish(10)
        state = wait_until(lambda: last_state().get("paused") and last_state(), what="paused")
        assert state["alert"] is False and state["in_view"] == 0 and state["fps"] == 0
        validate("state", state)
        wait_until(lambda: factory.pin(GREEN).state and not factory.pin(RED).state,
                   what="the lights to follow the pause")
        skipped = running.daemon.metrics.skipped.get("door", 0)
        wait_until(lambda: running.daemon.metrics.skipped.get("door", 0) > skipped + 5,
                   what="frames skipped while paused")
        commands = running.daemon.metrics.commands
        assert commands["accepted"] == 2 and commands["rejected_too_large"] == 1
        assert commands["rejected_unknown_camera"] == 1

        sender.publish("maskdet/pi-live/door/set", b'{"pause": false, "mute": false}',
                       qos=1).wait_for_publish(10)
        wait_until(lambda: last_state().get("paused") is False and last_state().get("alert"),
                   timeout=60, what="the alert after the pause")
        wait_until(lambda: any(s.state for s in factory.pin(BUZZER).states), what="a beep")
    finally:
        running.stop()
        recorder.close()


# -- faults and reloads --------------------------------------------------------------------------

def test_faults_around_the_frame_loop_never_leave_the_door_dark(broker, tmp_path, factory, caplog,
                                                                 monkeypatch):
    """The HTTP port is taken, the snapshot folder is a file, the outbox has a problem (its own
    faults are tests/service/test_outbox_faults.py's) and every health reading fails: each is
    logged or reported, the outbox's problem is in the camera's state, and the door still gets
    its red light, its events and its stats."""
    import socket

    from edge.service import health
    from edge.service.outbox import Outbox

    problem = "disk full: 3 events dropped; free space on /var/lib/maskdet"
    monkeypatch.setattr(Outbox, "problem", property(lambda self: problem))

    def broken(*args):
        raise OSError("sysfs is gone")

    for name in ("cpu_temperature", "load_average", "memory", "system_uptime"):
        monkeypatch.setattr(health, name, broken)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    (tmp_path / "snaps").write_text("a file, not a folder")
    recorder = Recorder(broker, "maskdet/+/+/event")
    stats = Recorder(broker, "maskdet/+/stats")
    states = Recorder(broker, "maskdet/+/+/state")
    config = config_for(broker, tmp_path, loop=False, extra=f"""
http: {{enabled: true, listen: "127.0.0.1:{taken.getsockname()[1]}"}}
snapshots: {{enabled: true, keep: true, folder: {tmp_path / 'snaps'}}}
""")
    daemon = Daemon(config, pin_factory=factory)
    daemon.start()
    daemon.run()
    assert any(s.state for s in factory.pin(RED).states)
    daemon.shutdown(drain_timeout=30)
    taken.close()
    assert "cannot listen" in caplog.text and "snapshots cannot be kept" in caplog.text
    events = recorder.wait_for(lambda m: m)
    assert [json.loads(p)["type"] for _, p, _ in events][0] == "no_mask"
    last = json.loads(stats.wait_for(lambda m: m)[-1][1])
    validate("stats", last)
    assert last["health"]["cpu_temperature_c"] is None and last["health"]["load"] is None
    assert last["snapshots"]["failed"] >= 1 and last["snapshots"]["published"] >= 1
    assert last["outbox"]["problem"] == problem
    running_states = [json.loads(p) for _, p, _ in states.wait_for(lambda m: m)][:-1]
    assert running_states and all(s["error"].endswith(problem) for s in running_states)
    recorder.close()
    stats.close()
    states.close()


def test_a_reload_keeps_the_http_view_and_the_commands_and_a_changed_view_moves(
        broker, tmp_path, factory, monkeypatch):
    monkeypatch.setenv("MASKDET_HTTP_TOKEN", TOKEN)
    http = 'http: {enabled: true, listen: "127.0.0.1:0", max_fps: 8}\n'
    first = Running(config_for(broker, tmp_path, extra=http), factory)
    try:
        view = first.daemon.http
        port = view.port
        first.daemon.controls.apply("door", {"mute": True})
        metrics = first.daemon.metrics
        wait_until(lambda: http_get(port, "/door/snapshot.jpg")[0] == 200, what="a live frame")
        first.daemon.reload_requested.set()
        first.thread.join(30)
        second = Daemon(config_for(broker, tmp_path, extra=http), pin_factory=factory,
                        predecessor=first.daemon)
        first.daemon.hand_over(second)
        first.daemon = second
        second.start()
        assert second.http is view and view.source is second and view.port == port
        assert second.controls.muted("door") and second.metrics is metrics
        first.thread = threading.Thread(target=second.run, daemon=True)
        first.thread.start()
        assert json.loads(http_get(port, "/api/state")[2])["door"]["muted"] is True

        changed = http.replace("max_fps: 8", "max_fps: 4")
        second.reload_requested.set()
        first.thread.join(30)
        third = Daemon(config_for(broker, tmp_path, extra=changed), pin_factory=factory,
                       predecessor=second)
        second.hand_over(third)
        first.daemon = third
        third.start()
        assert third.http is not view and view.stopping
        first.thread = threading.Thread(target=third.run, daemon=True)
        first.thread.start()
        assert http_get(third.http.port, "/api/state")[0] == 200
    finally:
        first.stop()
