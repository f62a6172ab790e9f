"""What arrives over MQTT, parsed and validated before anything is stored.

The topics are the daemon's (`../shared/DESIGN.md`), under `<prefix>/<device>/`: `availability`,
`stats`, `<camera>/event`, `<camera>/state`, and `<camera>/snapshot` (a JPEG). JSON payloads are
checked against the daemon's own JSON Schemas, read as files from `edge/service/schemas/` (the
monitor never imports the daemon), and against limits of the monitor's own: the payload's size,
names that fit the database, no NaN or infinity, an event's device and camera matching its topic.
Anything else under the prefix (Home Assistant discovery, command topics) is not ours and is
skipped. A payload that fails is a `DataError` with the reason: the caller logs it and goes on.
"""
import datetime
import functools
import importlib.util
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Optional

from edge.errors import DataError

MAX_JSON_BYTES = 64 * 1024
MAX_NAME = 64  # device and camera names, event types: the width of their columns
EVENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
JPEG_MAGIC = b"\xff\xd8\xff"
# Device clocks: an event time before this (a Pi without NTP yet says 1970) or more than an hour
# ahead of the monitor's clock is not believed: the monitor's receiving time stands in for it.
EARLIEST_BELIEVED_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
FUTURE_SLACK_MS = 3_600_000
DEVICE_TOPICS = {"availability", "stats"}
CAMERA_TOPICS = {"event", "state", "snapshot"}


@dataclass(frozen=True)
class Message:
    """One validated message. `data`: the JSON object (event, state, stats), True / False
    (availability: online / offline) or the JPEG bytes (snapshot). `time_ms`: when it happened
    (the payload's time, or for an event whose device clock is not believed, `received_ms`)."""

    kind: str
    device: str
    camera: Optional[str]
    data: Any
    received_ms: int
    time_ms: int
    clock_note: Optional[str] = None


def schema_dir():
    """The daemon's payload schemas, located without importing the daemon."""
    spec = importlib.util.find_spec("edge")
    return os.path.join(list(spec.submodule_search_locations)[0], "service", "schemas")


@functools.lru_cache(maxsize=None)
def validator(kind):
    """A compiled JSON Schema validator for `event`, `state` or `stats`."""
    import jsonschema

    with open(os.path.join(schema_dir(), f"{kind}.json"), encoding="utf-8") as handle:
        schema = json.load(handle)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def parse_topic(topic, prefix):
    """(device, camera or None, kind) of a topic of ours, else None."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    levels = topic[len(head):].split("/")
    if len(levels) == 2 and levels[1] in DEVICE_TOPICS:
        return levels[0], None, levels[1]
    if len(levels) == 3 and levels[2] in CAMERA_TOPICS:
        return levels[0], levels[1], levels[2]
    return None


def check_name(value, what):
    """A device or camera name from a topic: not empty, at most MAX_NAME characters, no control
    characters (the page shows it as text, never as markup)."""
    if not value or len(value) > MAX_NAME:
        raise DataError(f"{what} name must be 1 to {MAX_NAME} characters")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise DataError(f"{what} name holds control characters")
    return value


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is not a finite number")
    return value


def decode_json(payload):
    """A JSON object from a payload: at most MAX_JSON_BYTES of UTF-8, no NaN or Infinity."""
    if len(payload) > MAX_JSON_BYTES:
        raise DataError(f"payload of {len(payload)} bytes is over the limit of {MAX_JSON_BYTES}")
    try:
        data = json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant,
                          parse_float=_finite_float)
    except UnicodeDecodeError:
        raise DataError("payload is not UTF-8") from None
    except RecursionError:
        raise DataError("payload is nested too deeply") from None
    except ValueError as exc:
        raise DataError(f"payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"payload is a JSON {type(data).__name__}, not an object")
    return data


def validate(kind, data):
    """Check a JSON object against the daemon's schema for `kind`; DataError names the field."""
    import jsonschema

    error = jsonschema.exceptions.best_match(validator(kind).iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "payload"
        raise DataError(f"{kind} does not match its schema at {where}: {error.message[:200]}")


def parse_time_ms(text):
    """Epoch milliseconds of an ISO 8601 time with a zone (`...Z` or `+00:00`)."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise DataError(f"time {str(text)[:40]!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise DataError(f"time {text[:40]!r} has no time zone")
    return int(moment.timestamp() * 1000)


def believed_time(device_ms, received_ms):
    """(time to store, note or None): the device's time, unless its clock is clearly wrong."""
    if device_ms < EARLIEST_BELIEVED_MS:
        return received_ms, "before 2020: its clock is not set (NTP?)"
    if device_ms > received_ms + FUTURE_SLACK_MS:
        return received_ms, f"{(device_ms - received_ms) / 1000:.0f} s ahead of the monitor's clock"
    return device_ms, None


def _event(device, camera, data, received_ms):
    validate("event", data)
    if not EVENT_ID.fullmatch(data["id"]):
        raise DataError("event id must be 8 to 64 letters, digits, - or _")
    if data["device"] != device or data["camera"] != camera:
        raise DataError(f"event names device {data['device'][:MAX_NAME]!r} camera "
                        f"{data['camera'][:MAX_NAME]!r} but came on the topic of {device}/{camera}")
    if len(data["type"]) > MAX_NAME:
        raise DataError("event type is too long")
    time_ms, note = believed_time(parse_time_ms(data["time"]), received_ms)
    return Message("event", device, camera, data, received_ms, time_ms, note)


def _snapshot(device, camera, payload, received_ms, max_bytes):
    if len(payload) > max_bytes:
        raise DataError(f"snapshot of {len(payload)} bytes is over the limit of {max_bytes}")
    if not payload.startswith(JPEG_MAGIC):
        raise DataError("snapshot is not a JPEG")
    return Message("snapshot", device, camera, bytes(payload), received_ms, received_ms)


def _availability(device, payload, received_ms):
    text = payload.strip()
    if text not in (b"online", b"offline"):
        raise DataError(f"availability must be online or offline, got {text[:20]!r}")
    return Message("availability", device, None, text == b"online", received_ms, received_ms)


def parse_message(topic, payload, prefix, received_ms, snapshot_max_bytes=1_000_000):
    """The Message a topic and payload make, None when the topic is not one of ours (skipped), or
    DataError saying why the payload is refused."""
    where = parse_topic(topic, prefix)
    if where is None:
        return None
    device, camera, kind = where
    check_name(device, "device")
    if camera is not None:
        check_name(camera, "camera")
    if kind == "availability":
        return _availability(device, payload, received_ms)
    if kind == "snapshot":
        return _snapshot(device, camera, payload, received_ms, snapshot_max_bytes)
    data = decode_json(payload)
    if kind == "event":
        return _event(device, camera, data, received_ms)
    validate(kind, data)
    time_ms, _ = believed_time(parse_time_ms(data["time"]), received_ms)
    return Message(kind, device, camera, data, received_ms, time_ms)
