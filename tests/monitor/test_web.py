"""The JSON API, the CSV export, the live feed and the login, against a running monitor over
real HTTP (the page itself: test_browser.py)."""
import csv
import http.client
import io
import json
import queue
import socket
import threading
import time
import urllib.parse
import urllib.request

import paho.mqtt.client as mqtt
import pytest

from edge.service import payloads as daemon_payloads
from monitor.payloads import parse_message
from monitor.views import iso
from tests.monitor.conftest import get, get_json, wait_until, write_config

T0 = (int(time.time() * 1000) - 2 * 86_400_000) // 3_600_000 * 3_600_000  # within the retention
TOKEN = "a-test-token-of-32-characters-xx"


def fill(store, n=30):
    """n events over two devices, their state and availability, straight into the store."""
    messages = []
    for i in range(n):
        device = ("pi-a", "pi-b")[i % 2]
        data = daemon_payloads.event("no_mask" if i % 3 == 0 else "mask", "door", i + 1, 0.9, (1, 2, 3, 4),
                                     device, now=(T0 + i * 60_000) / 1000, event_id=f"{i:08d}")
        data["seq"] = i + 1
        messages.append(parse_message(f"maskdet/{device}/door/event", json.dumps(data).encode(), "maskdet",
                                      T0 + i * 60_000))
    for device in ("pi-a", "pi-b"):
        messages.append(parse_message(f"maskdet/{device}/availability", b"online", "maskdet", T0))
        state = daemon_payloads.state(device == "pi-b", 5, 2, 1, 9.5, "cpu", True, "no Edge TPU found",
                                      now=T0 / 1000)
        messages.append(parse_message(f"maskdet/{device}/door/state", json.dumps(state).encode(), "maskdet", T0))
    store.write(messages)


@pytest.fixture(scope="module")
def monitor(tmp_path_factory):
    """One monitor for the read-only API tests (no broker: the API works without one)."""
    from tests.monitor.conftest import RunningMonitor

    m = RunningMonitor(write_config(tmp_path_factory.mktemp("api")))
    fill(m.store)
    yield m
    m.stop()


def test_devices(monitor):
    devices = get_json(f"{monitor.url}/api/devices")["devices"]
    assert [d["device"] for d in devices] == ["pi-a", "pi-b"]
    b = devices[1]
    assert b["online"] is True and b["health"]["status"] == "warning"
    cam = b["cameras"][0]
    assert cam["camera"] == "door" and cam["alert"] is True and cam["alert_since"]
    assert (cam["accelerator"], cam["cause"], cam["fps"], cam["in_view"]) == ("cpu", "no Edge TPU found", 9.5, 1)
    assert cam["last_event"]["id"] == "00000029"


def test_events_filters_and_paging(monitor):
    page = get_json(f"{monitor.url}/api/events?limit=7")
    assert [e["id"] for e in page["events"]] == [f"{i:08d}" for i in range(29, 22, -1)]
    assert page["events"][0]["time"].endswith("Z") and page["events"][0]["box"] == [1, 2, 3, 4]
    seen = [e["id"] for e in page["events"]]
    while page["next"]:
        page = get_json(f"{monitor.url}/api/events?limit=7&cursor={page['next']}")
        seen += [e["id"] for e in page["events"]]
    assert sorted(seen) == [f"{i:08d}" for i in range(30)]
    since = urllib.parse.quote(iso(T0 + 600_000))
    picked = get_json(f"{monitor.url}/api/events?device=pi-a&type=no_mask&limit=100")["events"]
    assert {e["id"] for e in picked} == {f"{i:08d}" for i in range(0, 30, 6)}
    assert len(get_json(f"{monitor.url}/api/events?since={since}")["events"]) == 20  # ISO 8601 too
    window = get_json(f"{monitor.url}/api/events?since={T0 + 10 * 60_000}&until={T0 + 15 * 60_000}")
    assert [e["id"] for e in window["events"]] == [f"{i:08d}" for i in range(14, 9, -1)]


@pytest.mark.parametrize("query, says", [
    ("limit=0", "limit"), ("limit=abc", "limit"), ("limit=100000", "limit"), ("since=yesterday", "since"),
    ("cursor=xyz", "cursor"), ("device=" + "d" * 100, "device"), ("since=2&until=1", "before"),
    ("limit=%C2%B2", "limit"), ("since=%C2%B2", "since"), ("since=" + "9" * 30, "since"),
])
def test_bad_parameters_are_400_with_the_reason(monitor, query, says):
    status, _, body = get(f"{monitor.url}/api/events?{query}")
    assert status == 400 and says in json.loads(body)["error"]


def test_hourly(monitor):
    rows = get_json(f"{monitor.url}/api/hourly?since={T0}&until={T0 + 3 * 3_600_000}")["hours"]
    assert {(r["device"], r["people"], r["without_mask"]) for r in rows} == {("pi-a", 15, 5), ("pi-b", 15, 5)}
    assert all(r["hour"] == iso(T0) for r in rows), rows
    assert get_json(f"{monitor.url}/api/hourly?device=pi-a&since={T0}")["hours"][0]["device"] == "pi-a"


def test_csv_export(monitor):
    from monitor.payloads import parse_message as parse

    hostile = daemon_payloads.event("mask", "door", 1, 0.5, (1, 2, 3, 4), "=cmd", now=T0 / 1000,
                                    event_id="h" * 32)
    hostile["seq"] = 1
    monitor.store.write([parse("maskdet/=cmd/door/event", json.dumps(hostile).encode(), "maskdet", T0)])
    status, headers, body = get(f"{monitor.url}/api/events.csv?type=mask")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert "attachment" in headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(rows) == 21 and all(r["type"] == "mask" for r in rows)
    assert next(r for r in rows if r["id"] == "h" * 32)["device"] == "'=cmd"  # no formula
    assert rows[0]["time"].endswith("Z")
    # a streamed response gets the security headers too: people's events are never cached
    assert headers["Cache-Control"] == "no-store" and headers["X-Content-Type-Options"] == "nosniff"


def test_security_headers_and_static_files(monitor):
    status, headers, body = get(f"{monitor.url}/")
    assert status == 200 and b"/static/app.js" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    for name in ("app.js", "style.css"):
        assert get(f"{monitor.url}/static/{name}")[0] == 200
    assert get(f"{monitor.url}/static/../config.py")[0] in (403, 404)
    assert get(f"{monitor.url}/api/snapshots/12345")[0] == 404


def sse_reader(url, headers=None):
    """A thread reading a server-sent event stream into a queue of (event, data)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("GET", parts.path, headers=headers or {})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    got = queue.Queue()

    def read():
        kind = None
        try:
            for raw in response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    got.put((kind, json.loads(line[6:])))
        except (OSError, ValueError, AttributeError):  # closed by the test
            pass

    threading.Thread(target=read, daemon=True).start()
    return got, conn.sock  # shut it down to end the reader (closing waits for the next line)


def test_the_live_feed_sends_each_new_event(broker, tmp_path, start_monitor):
    monitor = start_monitor(write_config(tmp_path, broker))
    assert monitor.connected()
    feed, sock = sse_reader(f"{monitor.url}/api/stream")
    assert feed.get(timeout=10)[0] == "hello"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    data = daemon_payloads.event("no_mask", "door", 1, 0.9, (1, 2, 3, 4), "pi-a")
    data["seq"] = 1
    for _ in range(2):  # the second is a duplicate: not sent again
        client.publish("maskdet/pi-a/door/event", json.dumps(data), qos=1).wait_for_publish(5)
    kind, sent = feed.get(timeout=10)
    assert kind == "event" and sent["id"] == data["id"] and sent["type"] == "no_mask"
    assert feed.get(timeout=10) == ("devices", ["pi-a"])
    assert wait_until(lambda: monitor.ingest.status.duplicates == 1)
    assert feed.empty()
    client.disconnect()
    client.loop_stop()
    sock.shutdown(socket.SHUT_RDWR)


def test_with_a_token_nothing_is_served_without_it(tmp_path, start_monitor):
    monitor = start_monitor(write_config(tmp_path, listen="127.0.0.1:0".replace(":0", f":{_port()}")),
                            environ={"MASKDET_MONITOR_TOKEN": TOKEN})
    for path in ("/api/devices", "/api/events", "/api/events.csv", "/api/hourly", "/api/stream", "/api/health"):
        status, headers, _ = get(f"{monitor.url}{path}")
        assert status == 401 and "Bearer" in headers["WWW-Authenticate"], path
    assert get(f"{monitor.url}/api/devices", {"Authorization": "Bearer wrong-token"})[0] == 401
    assert get(f"{monitor.url}/api/devices", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    # The page sends people to the login form; the static files are public (no data in them).
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirected:
        opener.open(f"{monitor.url}/")
    assert redirected.value.code == 302 and redirected.value.headers["Location"] == "/login"
    assert get(f"{monitor.url}/static/style.css")[0] == 200
    # A wrong token: 401 and the form again; the right one: a session cookie that opens the API.
    bad = urllib.parse.urlencode({"token": "nope"}).encode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(f"{monitor.url}/login", data=bad)
    assert refused.value.code == 401 and b"not the token" in refused.value.read()
    good = urllib.parse.urlencode({"token": TOKEN}).encode()
    with pytest.raises(urllib.error.HTTPError) as logged_in:
        opener.open(f"{monitor.url}/login", data=good)
    cookie = logged_in.value.headers["Set-Cookie"]
    assert logged_in.value.code == 302 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    session = cookie.split(";")[0]
    assert get(f"{monitor.url}/api/devices", {"Cookie": session})[0] == 200
    assert get(f"{monitor.url}/", {"Cookie": session})[0] == 200
    forged = session.split("=")[0] + "=99999999999.deadbeef"
    assert get(f"{monitor.url}/api/devices", {"Cookie": forged})[0] == 401


def _port():
    from tests.monitor.conftest import free_port

    return free_port()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_session_cookies_expire_and_die_with_the_token():
    from monitor.auth import Auth

    auth = Auth(TOKEN, session_hours=1)
    cookie = auth.session_cookie(now=1000)
    assert auth.session_valid(cookie, now=1000 + 3599)
    assert not auth.session_valid(cookie, now=1000 + 3601)
    assert not Auth(TOKEN + "2").session_valid(cookie, now=1000)
    assert not auth.session_valid("garbage", now=0) and not auth.session_valid(None, now=0)


def test_a_snapshot_joins_its_event_on_the_feed_and_is_served(broker, tmp_path, start_monitor):
    monitor = start_monitor(write_config(tmp_path, broker))
    assert monitor.connected()
    feed, sock = sse_reader(f"{monitor.url}/api/stream")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    data = daemon_payloads.event("no_mask", "door", 1, 0.9, (1, 2, 3, 4), "pi-a")
    data["seq"] = 1
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
    client.publish("maskdet/pi-a/door/event", json.dumps(data), qos=1).wait_for_publish(5)
    client.publish("maskdet/pi-a/door/snapshot", jpeg, qos=1, retain=True).wait_for_publish(5)
    items = [feed.get(timeout=10) for _ in range(4)]  # hello, event, devices, snapshot
    link = next(d for kind, d in items if kind == "snapshot")
    assert link["event"] == data["id"]
    status, headers, body = get(f"{monitor.url}{link['snapshot']}")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body == jpeg
    event = get_json(f"{monitor.url}/api/events")["events"][0]
    assert event["snapshot"] == link["snapshot"]
    client.disconnect()
    client.loop_stop()
    sock.shutdown(socket.SHUT_RDWR)


def test_the_retention_runs_at_start(tmp_path, start_monitor):
    from monitor.config import check_monitor_config
    from monitor.store import Filters, Store

    config = write_config(tmp_path)  # retention_days: 30
    old = daemon_payloads.event("mask", "door", 1, 0.9, (1, 2, 3, 4), "pi-a",
                                now=time.time() - 40 * 86400, event_id="o" * 32)
    old["seq"] = 1
    store = Store.open(check_monitor_config(config).database)
    store.write([parse_message("maskdet/pi-a/door/event", json.dumps(old).encode(), "maskdet",
                               int(time.time() * 1000))])
    assert len(store.events(Filters())[0]) == 1
    store.close()
    monitor = start_monitor(config)
    assert wait_until(lambda: get_json(f"{monitor.url}/api/events")["events"] == [])
