"""What the monitor accepts from MQTT: the daemon's own payloads pass, and malformed or hostile
ones are DataErrors with a reason (never an exception of another kind)."""
import json

import pytest

from edge.errors import DataError
from edge.service import payloads as daemon_payloads
from monitor.payloads import EARLIEST_BELIEVED_MS, MAX_JSON_BYTES, parse_message, parse_topic

NOW_MS = 1_790_000_000_000  # 2026-09
NOW_S = NOW_MS / 1000


def event(**changes):
    data = daemon_payloads.event("no_mask", "door", 3, 0.97, (10, 20, 110, 140), "pi-a", now=NOW_S)
    data["seq"] = 7
    data.update(changes)
    return data


def parse(topic, payload, prefix="maskdet"):
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload).encode()
    return parse_message(topic, payload, prefix, NOW_MS)


def test_the_daemons_payloads_pass():
    e = parse("maskdet/pi-a/door/event", event())
    assert (e.kind, e.device, e.camera, e.time_ms, e.clock_note) == ("event", "pi-a", "door", NOW_MS, None)
    s = parse("maskdet/pi-a/door/state", daemon_payloads.state(True, 4, 1, 2, 14.2, "edgetpu", True, now=NOW_S))
    assert s.kind == "state" and s.data["alert"] is True
    st = parse("maskdet/pi-a/stats", daemon_payloads.stats({"detect": {"median": 5, "p90": 6}}, {"door": 1},
                                                           0, 0, 12.5, now=NOW_S))
    assert (st.kind, st.camera) == ("stats", None)
    assert parse("maskdet/pi-a/availability", b"online").data is True
    assert parse("maskdet/pi-a/availability", b"offline").data is False
    snap = parse("maskdet/pi-a/door/snapshot", b"\xff\xd8\xff\xe0" + b"\0" * 100)
    assert snap.kind == "snapshot" and snap.data.startswith(b"\xff\xd8")


def test_a_prefix_of_several_levels():
    assert parse_topic("site/maskdet/pi-a/door/event", "site/maskdet") == ("pi-a", "door", "event")
    assert parse("site/maskdet/pi-a/door/event", event(), prefix="site/maskdet").device == "pi-a"


@pytest.mark.parametrize("topic", [
    "homeassistant/binary_sensor/x/config", "maskdet/pi-a", "maskdet/pi-a/door/set",
    "maskdet/pi-a/door/event/extra", "maskdetx/pi-a/availability", "maskdet/pi-a/door",
])
def test_topics_that_are_not_ours_are_skipped(topic):
    assert parse(topic, b"anything") is None


HOSTILE = {
    "not JSON": b"{not json",
    "not UTF-8": b"\xff\xfe{}",
    "a list": b"[1, 2]",
    "NaN": json.dumps(event(score=0.5)).replace("0.5", "NaN").encode(),
    "Infinity": json.dumps(event(score=0.5)).replace("0.5", "Infinity").encode(),
    "nested too deeply": b"[" * 100_000 + b"]" * 100_000,
    "too large": b'{"a": "' + b"x" * MAX_JSON_BYTES + b'"}',
    "a missing field": json.dumps({k: v for k, v in event().items() if k != "id"}).encode(),
    "an unknown field": json.dumps(event(evil="<script>alert(1)</script>")).encode(),
    "a wrong type": json.dumps(event(track_id="3")).encode(),
    "a score above 1": json.dumps(event(score=7)).encode(),
    "an unknown decision": json.dumps(event(type="drop table events")).encode(),
    "an id with markup": json.dumps(event(id="<img src=x onerror=alert(1)>")).encode(),
    "an id too long": json.dumps(event(id="a" * 65)).encode(),
    "another device": json.dumps(event(device="pi-b")).encode(),
    "another camera": json.dumps(event(camera="back")).encode(),
    "a time without zone": json.dumps(event(time="2026-09-21T10:00:00")).encode(),
    "not a time": json.dumps(event(time="yesterday")).encode(),
}


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_malformed_and_hostile_events_are_refused_with_a_reason(what):
    with pytest.raises(DataError) as refused:
        parse("maskdet/pi-a/door/event", HOSTILE[what])
    assert str(refused.value)


@pytest.mark.parametrize("topic, payload", [
    ("maskdet/pi-a/availability", b"maybe"),
    ("maskdet/pi-a/availability", b"online" * 1000),
    ("maskdet/pi-a/door/snapshot", b"GIF89a not a jpeg"),
    ("maskdet/pi-a/door/snapshot", b"\xff\xd8\xff" + b"\0" * 2_000_000),
    ("maskdet/pi-a/door/state", b'{"alert": "yes"}'),
    ("maskdet/pi-a/stats", b'{"uptime_s": -1}'),
    ("maskdet/" + "d" * 65 + "/availability", b"online"),
    ("maskdet/pi\x07a/availability", b"online"),
    ("maskdet/pi-a/do\nor/event", json.dumps(event()).encode()),
])
def test_other_refused_payloads(topic, payload):
    with pytest.raises(DataError):
        parse(topic, payload)


def test_a_device_clock_that_is_not_set_is_not_believed():
    e = parse("maskdet/pi-a/door/event", event(time="1970-01-01T00:00:05.000Z"))
    assert e.time_ms == NOW_MS and "clock" in e.clock_note
    ahead = parse("maskdet/pi-a/door/event", event(time="2030-01-01T00:00:00Z"))
    assert ahead.time_ms == NOW_MS and "ahead" in ahead.clock_note
    # A replay of an outbox after a long outage keeps its (older, true) time.
    old = parse("maskdet/pi-a/door/event", event(time="2026-09-01T00:00:00Z"))
    assert EARLIEST_BELIEVED_MS < old.time_ms < NOW_MS and old.clock_note is None


def test_a_number_too_large_for_a_float_is_refused_like_nan():
    import pytest

    from edge.errors import DataError
    from monitor.payloads import decode_json

    with pytest.raises(DataError, match="finite"):
        decode_json(b'{"fps": 1e400}')
    assert decode_json(b'{"fps": 12.5}') == {"fps": 12.5}
