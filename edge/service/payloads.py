"""The JSON payloads the daemon publishes (schemas in `edge/service/schemas/`), as plain functions.

Events are of four types: the decisions `no_mask` and `mask` about a person, `person_left` when a
decided person leaves the view, and `alert_cleared` when a camera's alert ends. Each carries `id`
(unique), `seq` (added by the publisher), `type`, `camera`, `time`, `device`, and, from this
version on, what a monitor needs to read it: `frame_size` (the frame the box refers to),
`model`, `detector` and `sw_version`; a decision names its `snapshot` when one is taken, and a
`no_mask` decision from a model that tells them apart its `reason` (a bare face or a mask worn
below the nose).
"""
import datetime
import json
import os
import uuid

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")
DECISIONS = ("no_mask", "mask")
EVENT_TYPES = DECISIONS + ("person_left", "alert_cleared")
# The kinds of no mask a `no_mask` decision may name (`reason`): a bare face, a mask below the nose.
REASONS = ("no_mask", "mask_below_nose")


def utc_now_iso(now=None):
    """ISO 8601 UTC time with milliseconds and a Z."""
    moment = datetime.datetime.fromtimestamp(now, datetime.timezone.utc) if now is not None \
        else datetime.datetime.now(datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _box(box):
    return [int(round(v)) for v in box]


def event(kind, camera, track_id, score, box, device, now=None, event_id=None, context=None,
          reason=None):
    """One decision about one person (the publisher adds `seq` when it stores it). `context`:
    the fields every event of this daemon carries (`event_context`), and `snapshot` if any;
    `reason`: of a `no_mask` decision from a model that tells them apart, which kind of no mask
    (REASONS)."""
    payload = {"id": event_id or uuid.uuid4().hex, "type": kind, "camera": camera,
               "track_id": int(track_id), "score": round(float(score), 4), "box": _box(box),
               "time": utc_now_iso(now), "device": device}
    if reason is not None:
        payload["reason"] = reason
    return dict(payload, **(context or {}))


def person_left(camera, departure, device, context=None, event_id=None):
    """A decided person left the view (a `people.Departure`): their last decision, how long
    they were in view; `time` is when they were last seen."""
    return dict({"id": event_id or uuid.uuid4().hex, "type": "person_left", "camera": camera,
                 "track_id": int(departure.track_id), "decision": departure.kind,
                 "score": round(float(departure.score), 4), "box": _box(departure.box),
                 "first_seen": utc_now_iso(departure.first_seen),
                 "duration_s": round(max(0.0, departure.last_seen - departure.first_seen), 2),
                 "time": utc_now_iso(departure.last_seen), "device": device}, **(context or {}))


def alert_cleared(camera, cleared, device, context=None, event_id=None):
    """A camera's alert ended (a `people.AlertCleared`): when it started and how long it lasted;
    `time` is when it cleared."""
    return dict({"id": event_id or uuid.uuid4().hex, "type": "alert_cleared", "camera": camera,
                 "started": utc_now_iso(cleared.started_at),
                 "duration_s": round(max(0.0, cleared.cleared_at - cleared.started_at), 2),
                 "time": utc_now_iso(cleared.cleared_at), "device": device}, **(context or {}))


def event_context(frame_size, model, detector, sw_version):
    """The fields every event carries: the frame size `[width, height]` its box refers to, the
    classifier model (`file@sha256-prefix`), the detector type and the software version."""
    width, height = frame_size
    return {"frame_size": [int(width), int(height)], "model": model, "detector": detector,
            "sw_version": sw_version}


def snapshot_ref(snapshot_id, topic=None, path=None):
    """What an event says of its snapshot: its id (the event's id), the MQTT topic it is
    published on (retained; None: not published) and its file on the device (None: not kept)."""
    return {"id": snapshot_id, "topic": topic, "path": path}


def state(alert, people, without_mask, in_view, fps, accelerator, camera_ok, error=None, now=None,
          paused=False, muted=False):
    """A camera's retained state; `paused`: detection paused by a command, `muted`: its alerts
    do not sound the buzzer."""
    return {"alert": bool(alert), "people": int(people), "without_mask": int(without_mask),
            "in_view": int(in_view), "fps": round(float(fps), 2), "accelerator": accelerator,
            "camera_ok": bool(camera_ok), "error": error, "paused": bool(paused),
            "muted": bool(muted), "time": utc_now_iso(now)}


def stats(latency_ms, dropped_frames, outbox_depth, outbox_dropped, uptime_s, now=None, **extra):
    """Periodic statistics; `extra`: the optional sections (`outbox`, `frames_analysed`,
    `events`, `health`, `snapshots`, `accelerator`, `classifier`, `sw_version`, `model`)."""
    return dict({"latency_ms": latency_ms, "dropped_frames": dict(dropped_frames),
                 "outbox_depth": int(outbox_depth), "outbox_dropped": int(outbox_dropped),
                 "uptime_s": round(float(uptime_s), 1), "time": utc_now_iso(now)}, **extra)


def classifier_load(classified, skipped, interval_frames, interval_classified):
    """The stats' `classifier` section: faces the classifier ran on and faces the schedule left
    out (decided people, pictures, faces cut by the edge) since start, and faces classified per
    analysed frame over the last interval (None: no frame in it)."""
    per_frame = round(interval_classified / interval_frames, 3) if interval_frames > 0 else None
    return {"faces_classified": int(classified), "faces_skipped": int(skipped),
            "per_frame": per_frame}


def load_schema(name):
    """One of the payload schemas: event, state, stats."""
    with open(os.path.join(SCHEMA_DIR, f"{name}.json"), encoding="utf-8") as handle:
        return json.load(handle)
