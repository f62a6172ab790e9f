"""The HTTP view on its own (a stand-in daemon behind it): routes, the token, the MJPEG stream,
the viewer limit, the stop, and the frame loop's hand-over never blocking."""
import base64
import http.client
import json
import logging
import threading
import time

import numpy as np
import pytest

from edge.config.schema import HttpConfig, PrivacyConfig
from edge.inference.pipeline import FaceResult
from edge.service import payloads
from edge.service.http_view import BOUNDARY, HttpView, is_loopback, parse_listen, read_token
from tests.service.mjpeg import read_mjpeg

TOKEN = "s3cret-token-for-tests"


class Source:
    """What the daemon answers."""

    def http_states(self):
        return {"door": payloads.state(False, 1, 0, 1, 12.5, "cpu", True)}

    def http_stats(self):
        return None

    def metrics_text(self):
        return "# HELP x y\n# TYPE x gauge\nx 1\n"

    def snapshot_file(self, snapshot_id):
        return None


@pytest.fixture
def view():
    views = []

    def make(token=None, **settings):
        v = HttpView(HttpConfig(enabled=True, listen="127.0.0.1:0", **settings), PrivacyConfig(), token)
        v.set_cameras(["door"])
        assert v.start(Source())
        views.append(v)
        return v
    yield make
    for v in views:
        v.stop()


def get(view, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", view.port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def feeder(view, stop, fps=50):
    """The frame loop's side: offer a frame with one face every 1/fps s."""
    frame = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    faces = [FaceResult((200, 100, 280, 200), "no_mask", 0.97, 0.9)]
    number = 0
    while not stop.is_set():
        number += 1
        view.offer("door", number, frame, faces)
        stop.wait(1 / fps)


def test_listen_addresses():
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    assert parse_listen("localhost:1") == ("localhost", 1)
    for bad in ("8080", "pi.local:8080", "127.0.0.1:70000", "127.0.0.1:", " 127.0.0.1:80", "[::1]8080"):
        with pytest.raises(ValueError):
            parse_listen(bad)
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20") and not is_loopback("::")


def test_the_token_comes_from_the_environment_or_a_credential(tmp_path):
    config = HttpConfig()
    assert read_token(config, {"MASKDET_HTTP_TOKEN": " abc \n"}) == "abc"
    (tmp_path / "http-token").write_text("from-credential\n")
    assert read_token(config, {"CREDENTIALS_DIRECTORY": str(tmp_path)}) == "from-credential"
    (tmp_path / "http-token").write_text("\n")
    assert read_token(config, {"CREDENTIALS_DIRECTORY": str(tmp_path)}) is None
    assert read_token(config, {}) is None


def test_without_a_token_every_route_answers(view):
    v = view()
    response, body = get(v, "/")
    assert response.status == 200 and b"/app.js" in body and b"http" not in body.split(b"<style>")[0][:40]
    assert "default-src 'self'" in response.getheader("Content-Security-Policy")
    assert get(v, "/app.js")[0].getheader("Content-Type").startswith("text/javascript")
    response, body = get(v, "/api/state")
    assert response.status == 200 and json.loads(body)["door"]["fps"] == 12.5
    assert get(v, "/api/stats")[0].status == 503
    response, body = get(v, "/metrics")
    assert response.getheader("Content-Type").startswith("text/plain; version=0.0.4") and b"x 1" in body
    assert get(v, "/door/snapshot.jpg")[0].status == 503  # no frame yet
    for path in ("/garage/live.mjpeg", "/door/other", "/../etc/passwd", "/snapshots/../../x.jpg",
                 "/snapshots/" + "a" * 32 + ".jpg", "/%00"):
        assert get(v, path)[0].status == 404, path


def test_with_a_token_a_request_without_it_is_refused(view):
    v = view(TOKEN)
    for path in ("/", "/app.js", "/api/state", "/api/stats", "/metrics", "/door/live.mjpeg",
                 "/door/snapshot.jpg", "/nothing"):
        response, _ = get(v, path)
        assert response.status == 401, path
        assert response.getheader("WWW-Authenticate").startswith("Basic")
    assert get(v, "/api/state", {"Authorization": "Bearer wrong-token-000"})[0].status == 401
    assert get(v, "/api/state", {"Authorization": "Bearer " + TOKEN})[0].status == 200
    basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    assert get(v, "/api/state", {"Authorization": "Basic " + basic})[0].status == 200
    assert get(v, "/api/state", {"Authorization": "Basic !!notbase64"})[0].status == 401
    assert get(v, "/?token=wrong")[0].status == 401
    response, _ = get(v, "/?token=" + TOKEN)
    assert response.status == 303 and response.getheader("Location") == "/"
    cookie = response.getheader("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert get(v, "/api/state", {"Cookie": cookie.split(";")[0]})[0].status == 200


def test_the_live_stream_is_jpeg_parts_with_the_boundary_at_a_capped_rate(view):
    v = view(max_fps=5)
    stop = threading.Event()
    threading.Thread(target=feeder, args=(v, stop), daemon=True).start()
    try:
        started = time.monotonic()
        response, parts = read_mjpeg("127.0.0.1", v.port, "/door/live.mjpeg", 6)
        took = time.monotonic() - started
        assert response.getheader("Content-Type") == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        assert len(parts) == 6 and took >= 5 / 5 * 0.9, took  # 50 frames/s offered, 5 sent
        response, body = get(v, "/door/snapshot.jpg")
        assert response.status == 200 and body[:3] == b"\xff\xd8\xff"
    finally:
        stop.set()


def test_too_many_viewers_are_refused_and_a_stop_ends_the_open_streams(view):
    v = view(max_viewers=1)
    stop = threading.Event()
    threading.Thread(target=feeder, args=(v, stop), daemon=True).start()
    first = http.client.HTTPConnection("127.0.0.1", v.port, timeout=10)
    first.request("GET", "/door/live.mjpeg")
    assert first.getresponse().status == 200
    deadline = time.monotonic() + 5
    while v.viewers < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    response, _ = get(v, "/door/live.mjpeg")
    assert response.status == 503 and response.getheader("Retry-After")
    started = time.monotonic()
    v.stop()
    deadline = time.monotonic() + 5
    while v.viewers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert v.viewers == 0 and time.monotonic() - started < 3
    stop.set()
    first.close()


def test_offering_frames_never_waits_for_a_slow_viewer(view):
    v = view(max_fps=30)
    slow = http.client.HTTPConnection("127.0.0.1", v.port, timeout=10)
    slow.request("GET", "/door/live.mjpeg")  # and never read: the socket buffers fill up
    frame = np.zeros((720, 1280, 3), np.uint8)
    worst = 0.0
    for number in range(1, 301):
        started = time.perf_counter()
        v.offer("door", number, frame, [])
        worst = max(worst, time.perf_counter() - started)
        time.sleep(0.002)
    assert worst < 0.05, worst
    v.offer("garage", 1, frame, [])  # an unknown camera is ignored
    slow.close()


def test_a_port_in_use_is_logged_and_the_daemon_goes_on(view, caplog):
    v = view()
    other = HttpView(HttpConfig(enabled=True, listen=f"127.0.0.1:{v.port}"), PrivacyConfig())
    assert other.start(Source()) is False
    assert "cannot listen" in caplog.text
    other.stop()


def test_a_failing_route_answers_500_is_logged_and_the_server_goes_on(view, caplog):
    v = view()

    class Broken(Source):
        def metrics_text(self):
            raise RuntimeError("a bug in a gauge")

    v.source = Broken()
    response, body = get(v, "/metrics")
    assert response.status == 500 and b"bug" not in body  # no details to the network
    assert "a bug in a gauge" in caplog.text and v.errors == 1
    assert get(v, "/api/state")[0].status == 200


def test_the_token_in_a_query_never_reaches_the_log(view, caplog):
    caplog.set_level(logging.DEBUG, logger="edge.service.http_view")
    v = view(TOKEN)
    assert get(v, "/?token=" + TOKEN)[0].status == 303
    assert get(v, "/api/state?token=" + TOKEN)[0].status in (200, 401)
    assert any("HTTP" in r.getMessage() for r in caplog.records)  # requests are logged ...
    assert TOKEN not in caplog.text  # ... without the token


def test_a_connection_that_sends_nothing_is_dropped_and_cannot_starve_the_others(view):
    import socket

    from edge.service import http_view

    v = view()
    idle = [socket.create_connection(("127.0.0.1", v.port)) for _ in range(http_view.MAX_CONNECTIONS + 4)]
    try:
        idle[0].settimeout(3 * http_view.REQUEST_TIMEOUT_S)
        assert idle[0].recv(1) == b""  # the server closed the silent connection itself
    finally:
        for s in idle:
            s.close()
    assert get(v, "/api/state")[0].status == 200  # and answers again
