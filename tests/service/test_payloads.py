import jsonschema
import pytest

from edge.service import payloads
from edge.service.people import Departure


def validate(name, payload):
    jsonschema.validate(payload, payloads.load_schema(name),
                        format_checker=jsonschema.FormatChecker())


def test_event_payload_matches_its_schema_and_has_a_unique_id():
    a = dict(payloads.event("no_mask", "door", 3, 0.93, (10.2, 20.7, 110, 130), "pi-1", now=0), seq=1)
    b = dict(payloads.event("mask", "door", 4, 0.88, (0, 0, 5, 5), "pi-1"), seq=2)
    validate("event", a)
    validate("event", b)
    assert a["id"] != b["id"] and a["box"] == [10, 21, 110, 130]
    assert a["time"] == "1970-01-01T00:00:00.000Z"


def test_a_wrong_event_fails_the_schema():
    bad = dict(payloads.event("no_mask", "door", 3, 0.93, (1, 2, 3, 4), "pi-1"), seq=1)
    bad["type"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        validate("event", bad)
    del bad["id"]
    with pytest.raises(jsonschema.ValidationError):
        validate("event", {**bad, "type": "mask"})


@pytest.mark.parametrize("reason", payloads.REASONS)
def test_a_no_mask_event_may_say_which_kind_of_no_mask(reason):
    event = dict(payloads.event("no_mask", "door", 3, 0.93, (1, 2, 3, 4), "pi-1", reason=reason),
                 seq=1)
    validate("event", event)
    assert event["reason"] == reason
    assert "reason" not in payloads.event("no_mask", "door", 3, 0.93, (1, 2, 3, 4), "pi-1")
    left = dict(payloads.person_left("door", Departure(3, "no_mask", 0.93, (1, 2, 3, 4), 0.0, 2.0),
                                     "pi-1"), seq=2)
    validate("event", left)  # valid without a reason: what the next one adds is the fault
    for wrong in ({**event, "reason": "chin"}, {**event, "type": "mask"},
                  {**left, "reason": reason}):
        with pytest.raises(jsonschema.ValidationError):
            validate("event", wrong)


def test_state_and_stats_payloads_match_their_schemas():
    validate("state", payloads.state(True, 5, 2, 1, 14.5, "cpu", True))
    validate("stats", payloads.stats({"detect": {"median": 4.1, "p90": 6.0}}, {"door": 3}, 0, 0, 12.3))
    with pytest.raises(jsonschema.ValidationError):
        validate("state", payloads.state(True, 5, 2, 1, 14.5, "gpu", True))
