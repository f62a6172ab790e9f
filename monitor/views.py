"""Database rows as the JSON the API serves (and the page shows): plain functions over dicts.

Times go out as ISO 8601 UTC strings (`...Z`, milliseconds), as the devices write them.
A device's health is read from its availability, its cameras' state and its last stats.
"""
import datetime
import json

HOUR_MS = 3_600_000
STATS_STALE_MS = 10 * 60_000  # online but no stats for this long: said in its health


def iso(ms):
    """ISO 8601 UTC of epoch milliseconds (None stays None)."""
    if ms is None:
        return None
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(text):
    return json.loads(text) if text else None


def event_view(row):
    """One stored event."""
    payload = _json(row["payload"]) or {}
    return {"id": row["id"], "device": row["device"], "camera": row["camera"], "type": row["type"],
            "time": iso(row["time_ms"]), "received": iso(row["received_ms"]), "score": row["score"],
            "track_id": row["track_id"], "seq": row["seq"], "box": payload.get("box"),
            "reason": payload.get("reason"),
            "snapshot": f"/api/snapshots/{row['snapshot_id']}" if row.get("snapshot_id") else None}


def camera_view(row, last_event=None):
    """One camera: its alert and since when, and what its last retained state says."""
    state = _json(row["state"]) or {}
    return {"camera": row["name"], "alert": row["alert"], "alert_since": iso(row["alert_since_ms"]),
            "alert_cleared": iso(row["alert_cleared_ms"]), "in_view": state.get("in_view"),
            "people": state.get("people"), "without_mask": state.get("without_mask"),
            "fps": state.get("fps"), "accelerator": state.get("accelerator"),
            "cause": state.get("error"), "camera_ok": state.get("camera_ok"),
            "state_time": iso(row["state_ms"]),
            "last_event": event_view(last_event) if last_event else None}


def health(device_row, stats, cameras, now_ms):
    """{"status": ok | warning | offline | unknown, "problems": [text]} of a device."""
    problems = []
    if device_row["online"] is False:
        problems.append("offline")
    for cam in cameras:
        if cam["camera_ok"] is False and device_row["online"] is not False:
            problems.append(f"camera {cam['camera']}: {cam['cause'] or 'no frames'}")
        elif cam["accelerator"] == "cpu" and cam["cause"]:
            problems.append(f"camera {cam['camera']} on the CPU: {cam['cause']}")
    if stats:
        if stats.get("outbox_depth"):
            problems.append(f"{stats['outbox_depth']} events waiting in its outbox")
        if stats.get("outbox_dropped"):
            problems.append(f"{stats['outbox_dropped']} events dropped from its outbox")
    if device_row["online"] and device_row["stats_ms"] is not None \
            and now_ms - device_row["stats_ms"] > STATS_STALE_MS:
        problems.append(f"no stats for {(now_ms - device_row['stats_ms']) // 60_000} min")
    if device_row["online"] is False:
        status = "offline"
    elif device_row["online"] is None:
        status = "unknown"
    else:
        status = "warning" if problems else "ok"
    return {"status": status, "problems": problems}


def device_view(device_row, camera_rows, last_events, now_ms):
    """One device with its cameras, stats and health."""
    stats = _json(device_row["stats"])
    cams = [camera_view(c, last_events.get((c["device"], c["name"]))) for c in camera_rows]
    return {"device": device_row["name"], "online": device_row["online"],
            "availability_since": iso(device_row["availability_ms"]),
            "first_seen": iso(device_row["first_seen_ms"]), "last_seen": iso(device_row["last_seen_ms"]),
            "stats": stats, "stats_time": iso(device_row["stats_ms"]),
            "health": health(device_row, stats, cams, now_ms), "cameras": cams}


def devices_view(device_rows, camera_rows, last_events, now_ms):
    """Every device, as `/api/devices` serves them."""
    by_device = {}
    for cam in camera_rows:
        by_device.setdefault(cam["device"], []).append(cam)
    return [device_view(d, by_device.get(d["name"], []), last_events, now_ms) for d in device_rows]


def hourly_view(rows):
    """Hourly counts as `/api/hourly` serves them."""
    return [{"device": r["device"], "camera": r["camera"], "hour": iso(r["hour"] * HOUR_MS),
             "people": r["people"], "without_mask": r["without_mask"]} for r in rows]
