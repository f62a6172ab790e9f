"""The JSON payloads the daemon publishes (schemas in `edge/schemas/`), as plain functions."""
import datetime
import json
import os
import uuid

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")


def utc_now_iso(now=None):
    """ISO 8601 UTC time with milliseconds and a Z."""
    moment = datetime.datetime.fromtimestamp(now, datetime.timezone.utc) if now is not None \
        else datetime.datetime.now(datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(kind, camera, track_id, score, box, device, now=None, event_id=None):
    """One decision about one person (the publisher adds `seq` when it stores it)."""
    return {"id": event_id or uuid.uuid4().hex, "type": kind, "camera": camera,
            "track_id": int(track_id), "score": round(float(score), 4),
            "box": [int(round(v)) for v in box], "time": utc_now_iso(now), "device": device}


def state(alert, people, without_mask, in_view, fps, accelerator, camera_ok, error=None, now=None):
    """A camera's retained state."""
    return {"alert": bool(alert), "people": int(people), "without_mask": int(without_mask),
            "in_view": int(in_view), "fps": round(float(fps), 2), "accelerator": accelerator,
            "camera_ok": bool(camera_ok), "error": error, "time": utc_now_iso(now)}


def stats(latency_ms, dropped_frames, outbox_depth, outbox_dropped, uptime_s, now=None):
    """Periodic statistics."""
    return {"latency_ms": latency_ms, "dropped_frames": dict(dropped_frames),
            "outbox_depth": int(outbox_depth), "outbox_dropped": int(outbox_dropped),
            "uptime_s": round(float(uptime_s), 1), "time": utc_now_iso(now)}


def load_schema(name):
    """One of the payload schemas: event, state, stats."""
    with open(os.path.join(SCHEMA_DIR, f"{name}.json"), encoding="utf-8") as handle:
        return json.load(handle)
