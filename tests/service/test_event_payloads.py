"""The four event types and the new fields of events, state and stats, against their JSON
Schemas (the same files the monitor reads)."""
import jsonschema
import pytest

from edge.service import payloads
from edge.service.people import AlertCleared, Departure


def validate(name, payload):
    jsonschema.validate(payload, payloads.load_schema(name), format_checker=jsonschema.FormatChecker())


CONTEXT = payloads.event_context((1280, 720), "mask_classifier_int8.tflite@8dea35b8b918", "yunet", "0.1.0")


def test_a_decision_carries_the_frame_size_the_model_the_detector_and_the_version():
    ref = payloads.snapshot_ref("a" * 32, "maskdet/pi/door/snapshot", "/var/lib/maskdet/snapshots/x.jpg")
    event = dict(payloads.event("no_mask", "door", 1, 0.9, (1, 2, 3, 4), "pi", now=0,
                                event_id="a" * 32, context=dict(CONTEXT, snapshot=ref)), seq=1)
    validate("event", event)
    assert event["frame_size"] == [1280, 720] and event["detector"] == "yunet"
    assert event["snapshot"]["id"] == event["id"]
    validate("event", dict(event, snapshot=None))  # the snapshot queue was full
    validate("event", dict(payloads.event("mask", "door", 1, 0.9, (1, 2, 3, 4), "pi"), seq=2))  # older daemons


def test_person_left_says_the_last_decision_and_how_long_the_person_was_in_view():
    left = payloads.person_left("door", Departure(3, "no_mask", 0.91, (5, 6, 50, 60), 100.0, 104.5),
                                "pi", CONTEXT)
    validate("event", dict(left, seq=3))
    assert (left["type"], left["decision"], left["duration_s"]) == ("person_left", "no_mask", 4.5)
    assert left["time"] == payloads.utc_now_iso(104.5)
    with pytest.raises(jsonschema.ValidationError):
        validate("event", dict(left, seq=3, decision=None))
    with pytest.raises(jsonschema.ValidationError):  # a departure names no snapshot
        validate("event", dict(left, seq=3, snapshot=None))


def test_alert_cleared_has_no_person_and_says_how_long_the_alert_lasted():
    cleared = payloads.alert_cleared("door", AlertCleared(10.0, 17.25), "pi", CONTEXT)
    validate("event", dict(cleared, seq=4))
    assert cleared["duration_s"] == 7.25 and "track_id" not in cleared
    with pytest.raises(jsonschema.ValidationError):
        validate("event", dict(cleared, seq=4, track_id=1))
    with pytest.raises(jsonschema.ValidationError):
        validate("event", dict(cleared, seq=4, type="no_mask"))  # a decision needs its person


@pytest.mark.parametrize("change", [{"type": "left"}, {"frame_size": [0, 720]}, {"model": ""},
                                    {"snapshot": {"id": "a" * 32}}, {"extra": 1}])
def test_a_wrong_event_fails_the_schema(change):
    event = dict(payloads.event("no_mask", "door", 1, 0.9, (1, 2, 3, 4), "pi", context=CONTEXT), seq=1)
    with pytest.raises(jsonschema.ValidationError):
        validate("event", dict(event, **change))


def test_state_says_paused_and_muted():
    validate("state", payloads.state(False, 1, 0, 0, 0.0, "cpu", True, "outbox full", paused=True,
                                     muted=True))
    with pytest.raises(jsonschema.ValidationError):
        validate("state", dict(payloads.state(False, 1, 0, 0, 0.0, "cpu", True), paused="yes"))


def test_stats_with_every_section_match_the_schema():
    health = {"cpu_temperature_c": 51.2, "load": [0.5, 0.4, 0.3],
              "throttled": {"raw": 0x50005, "now": ["under_voltage", "throttled"],
                            "since_boot": ["under_voltage", "throttled"]},
              "memory": {"total_mb": 3796.0, "available_mb": 2000.5}, "disk_free_mb": 1000.0,
              "system_uptime_s": 99.0}
    stats = payloads.stats(
        {"detect": {"median": 4.1, "p90": 6.0}}, {"door": 3}, 0, 2, 12.3,
        frames_analysed={"door": 100}, events={"no_mask": 1, "person_left": 1},
        outbox={"depth": 0, "dropped": 2, "drops": {"outbox_full": 2, "disk_full": 0, "error": 0},
                "storage": "memory", "problem": "disk full"},
        snapshots={"made": 1, "published": 1, "kept": 1, "dropped": 0, "failed": 0, "problem": None},
        accelerator={"mask_classifier_int8.tflite": {"accelerator": "cpu", "fallbacks": 1,
                                                     "recoveries": 0, "cpu_seconds": 3.5,
                                                     "tpu_restarts": 2, "worker_pid": None}},
        health=health, sw_version="0.1.0", model="m@1", detector="yunet")
    validate("stats", stats)
    validate("stats", dict(stats, health=dict(health, cpu_temperature_c=None, throttled=None,
                                              load=None, memory=None, disk_free_mb=None,
                                              system_uptime_s=None)))
    with pytest.raises(jsonschema.ValidationError):
        validate("stats", dict(stats, outbox=dict(stats["outbox"], storage="cloud")))
