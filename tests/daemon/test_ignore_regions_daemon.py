"""The daemon with an ignore region over the face of the shared video `one_unmasked.mp4` (which
alone gives a `no_mask` event: tests/daemon/test_end_to_end.py): the face never becomes a person,
an event or an alert, while the camera's state, the stats and the green light go on; the live
view is handed the ignored faces and the region; a reload applies new regions."""
import json
import threading
import time

import pytest

pytest.importorskip("gpiozero")
from gpiozero.pins.mock import MockFactory  # noqa: E402

from edge.config.loader import load_yaml  # noqa: E402
from edge.config.schema import Config  # noqa: E402
from edge.service.daemon import Daemon  # noqa: E402
from tests.conftest import Subscriber, shared_path  # noqa: E402
from tests.daemon.configs import BUZZER, GREEN, RED, service_sections  # noqa: E402

# The face of one_unmasked.mp4 (1280 x 720) stays within x 431..823 and y 6..523: its box
# centre within x 0.47..0.53 and y 0.35..0.39 of the frame. This region covers the whole face.
FACE_AREA = [[0.3, 0.0], [0.7, 0.0], [0.7, 0.75], [0.3, 0.75]]
DECISIONS = ("no_mask", "mask")


def config_for(broker, tmp_path, regions, loop=False, http=False):
    return load_yaml(Config, f"""
device_id: pi-regions
cameras:
  - name: door
    source: {{type: opencv, url: {shared_path('data', 'videos', 'one_unmasked.mp4')}, fps: 25,
              realtime: true, loop: {str(loop).lower()}}}
    ignore_regions: {json.dumps(regions)}
detector: {{type: yunet}}
{service_sections(broker, tmp_path)}http: {{enabled: {str(http).lower()}, listen: "127.0.0.1:0"}}
""", "test.yaml")


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


def payloads_of(messages, suffix):
    return [json.loads(p) for t, p, _ in messages if t.endswith(suffix)]


def wait_until(condition, timeout=60.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_face_in_an_ignore_region_gives_no_event_while_the_service_goes_on(
        broker, tmp_path, factory):
    sub = Subscriber(broker, "maskdet/#")
    daemon = Daemon(config_for(broker, tmp_path, [FACE_AREA]), pin_factory=factory)
    daemon.start()
    daemon.run()  # to the end of the video
    assert factory.pin(GREEN).state and not any(s.state for s in factory.pin(RED).states)
    assert not any(s.state for s in factory.pin(BUZZER).states)
    frames = daemon.metrics.frames_analysed()
    ignored = daemon.ignore["door"].ignored
    daemon.shutdown(drain_timeout=30)
    got = sub.wait_for(lambda m: m and m[-1][1] == "offline")
    sub.close()
    # the face was there, frame after frame, and was set apart (not missed by the detector)
    assert sum(frames.values()) >= 20 and ignored >= 0.8 * sum(frames.values()), (frames, ignored)
    assert not [e for e in payloads_of(got, "/event") if e["type"] in DECISIONS]
    states = payloads_of(got, "/state")[:-1]  # the last one is the final state at shutdown
    assert any(s["camera_ok"] for s in states), states  # (not once the file has ended)
    assert all(not s["alert"] for s in states), states
    assert all(s["people"] == 0 and s["in_view"] == 0 for s in states), states
    assert payloads_of(got, "/stats")


def test_the_live_view_is_given_the_region_and_a_reload_applies_new_regions(
        broker, tmp_path, factory):
    events = Subscriber(broker, "maskdet/+/+/event")
    first = Daemon(config_for(broker, tmp_path, [FACE_AREA], loop=True, http=True),
                   pin_factory=factory)
    first.start()
    thread = threading.Thread(target=first.run, daemon=True)
    thread.start()
    daemon = first
    try:
        slot = first.http.slots["door"]
        item = wait_until(lambda: (lambda i: i if i and i[3] else None)(slot.wait_newer(0, 1)),
                          what="a live frame with an ignored face")
        _, _, faces, ignored, regions = item
        assert faces == [] and len(ignored) == 1
        assert len(regions) == 1 and [list(p) for p in regions[0]] == FACE_AREA
        wait_until(lambda: first.ignore["door"].ignored >= 30, what="30 faces ignored")
        assert not events.messages

        first.reload_requested.set()
        thread.join(30)
        second = Daemon(config_for(broker, tmp_path, [], loop=True, http=True),
                        pin_factory=factory, predecessor=first)
        first.hand_over(second)
        daemon = second
        second.start()
        assert second.http is first.http and not second.ignore["door"]
        thread = threading.Thread(target=second.run, daemon=True)
        thread.start()
        got = events.wait_for(lambda m: any(json.loads(p)["type"] == "no_mask" for _, p, _ in m),
                              timeout=60)
        assert "no_mask" in [json.loads(p)["type"] for _, p, _ in got], got
        item = wait_until(lambda: (lambda i: i if i and i[2] else None)(slot.wait_newer(0, 1)),
                          what="a live frame with the face as a person")
        assert item[3] == [] and item[4] == ()
    finally:
        daemon.stop_requested.set()
        thread.join(30)
        daemon.shutdown(drain_timeout=30)
        events.close()
