"""Home Assistant discovery payloads against HA's current MQTT schemas.

The allow-lists below are the configuration variables of each platform as the HA documentation
lists them (home-assistant.io/integrations/<platform>.mqtt, 2025.10 and later) and as HA's
voluptuous schemas accept them (homeassistant/components/mqtt: schemas.py MQTT_ENTITY_COMMON_SCHEMA
and MQTT_AVAILABILITY_SCHEMA, config.py MQTT_BASE / RO / RW schemas, and each platform's module).
Keys HA marks deprecated are refused: `object_id` (replaced by `default_entity_id` in HA 2025.10,
removed in 2026.4), `last_reset_topic` and the device's `via_hub`. Abbreviated keys are not used.
The value templates are rendered with Jinja2 (HA's template engine) against a real state
payload."""
import json

import jsonschema
import pytest

from edge.service import payloads
from edge.service.discovery import discovery_messages

COMMON = {  # every MQTT entity: availability, device, origin, entity registry options
    "availability", "availability_mode", "availability_template", "availability_topic",
    "payload_available", "payload_not_available", "device", "origin", "enabled_by_default",
    "entity_category", "entity_picture", "icon", "json_attributes_template",
    "json_attributes_topic", "default_entity_id", "unique_id", "name", "qos", "encoding",
    "platform",
}
PLATFORMS = {
    "binary_sensor": COMMON | {"state_topic", "value_template", "device_class", "expire_after",
                               "force_update", "off_delay", "payload_off", "payload_on"},
    "sensor": COMMON | {"state_topic", "value_template", "device_class", "expire_after",
                        "force_update", "last_reset_value_template", "options",
                        "suggested_display_precision", "state_class", "unit_of_measurement"},
    "switch": COMMON | {"command_topic", "command_template", "device_class", "optimistic",
                        "payload_off", "payload_on", "retain", "state_off", "state_on",
                        "state_topic", "value_template"},
    "image": COMMON | {"content_type", "image_encoding", "image_topic", "url_template", "url_topic"},
    "event": COMMON | {"state_topic", "event_types", "device_class", "value_template"},
}
REQUIRED = {"binary_sensor": {"state_topic"}, "sensor": {"state_topic"},
            "switch": {"command_topic"}, "image": set(), "event": {"state_topic", "event_types"}}
DEPRECATED = {"object_id", "last_reset_topic", "via_hub", "json_attributes"}
DEVICE_KEYS = {"identifiers", "connections", "manufacturer", "model", "model_id", "name",
               "hw_version", "serial_number", "sw_version", "via_device", "suggested_area",
               "configuration_url"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
SENSOR_STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
BINARY_SENSOR_CLASSES = {"problem", "connectivity"}  # the two used; both exist in HA
ENTITY_CATEGORIES = {"config", "diagnostic"}


def messages(snapshots=True, cameras=("door", "side")):
    return discovery_messages("maskdet/pi-1", "pi-1", list(cameras), "homeassistant", snapshots,
                              "mask_classifier_int8.tflite@8dea35b8b918")


def entities(snapshots=True):
    out = []
    for topic, payload in messages(snapshots):
        prefix, platform, uid, last = topic.split("/")
        assert (prefix, last) == ("homeassistant", "config")
        if payload is not None:
            out.append((platform, uid, payload))
    return out


def test_each_camera_has_its_entities_on_one_device():
    found = {(platform, uid.split("_", 3)[3]) for platform, uid, _ in entities()}
    for camera in ("door", "side"):
        assert {(p, f"{camera}_{w}") for p, w in [
            ("binary_sensor", "alert"), ("binary_sensor", "camera"), ("sensor", "in_view"),
            ("sensor", "without_mask"), ("sensor", "fps"), ("switch", "mute"),
            ("switch", "pause"), ("event", "no_mask"), ("image", "snapshot")]} <= found
    devices = {json.dumps(p["device"], sort_keys=True) for _, _, p in entities()}
    assert len(devices) == 1
    device = json.loads(devices.pop())
    assert device["model"] and device["sw_version"] and device["identifiers"] == ["maskdet_pi-1"]  # as before: HA keeps the device


@pytest.mark.parametrize("platform, uid, payload", entities(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_payload_uses_only_current_keys_of_its_platform(platform, uid, payload):
    keys = set(payload)
    assert not keys & DEPRECATED
    assert keys <= PLATFORMS[platform], keys - PLATFORMS[platform]
    assert REQUIRED[platform] <= keys
    assert set(payload["device"]) <= DEVICE_KEYS and set(payload["origin"]) <= ORIGIN_KEYS
    assert payload["unique_id"] == uid
    assert payload["default_entity_id"] == f"{platform}.{uid.lower()}"
    assert payload["availability_topic"] == "maskdet/pi-1/availability"
    assert payload.get("entity_category", "config") in ENTITY_CATEGORIES
    if platform == "sensor":
        assert payload["state_class"] in SENSOR_STATE_CLASSES
    if platform == "binary_sensor":
        assert payload["device_class"] in BINARY_SENSOR_CLASSES
    if platform == "image":
        assert ("image_topic" in payload) != ("url_topic" in payload)
        assert payload["content_type"] == "image/jpeg"
    if platform == "switch":
        assert payload["command_topic"].endswith("/set") and payload["retain"] is False


def test_the_allow_lists_can_fail():
    payload = dict(entities()[0][2], object_id="x")
    assert set(payload) & DEPRECATED


def test_without_snapshots_the_image_entities_are_removed():
    removals = [t for t, p in messages(snapshots=False) if p is None]
    assert removals == ["homeassistant/image/maskdet_pi_1_door_snapshot/config",
                        "homeassistant/image/maskdet_pi_1_side_snapshot/config"]
    assert not [p for p, _, _ in entities(snapshots=False) if p == "image"]


def test_a_camera_removed_by_a_reload_loses_its_entities():
    gone = discovery_messages("maskdet/pi-1", "pi-1", ["door"], "homeassistant", True, None,
                              removed=["side"])
    assert {t for t, p in gone if p is None} == {
        f"homeassistant/{p}/maskdet_pi_1_side_{w}/config" for p, w in [
            ("binary_sensor", "alert"), ("binary_sensor", "camera"), ("sensor", "in_view"),
            ("sensor", "without_mask"), ("sensor", "fps"), ("switch", "mute"),
            ("switch", "pause"), ("event", "no_mask"), ("image", "snapshot")]}


def test_the_templates_render_a_real_state_payload():
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    state = payloads.state(True, 5, 2, 1, 14.56, "cpu", True, paused=True, muted=False)
    jsonschema.validate(state, payloads.load_schema("state"))
    rendered = {}
    for platform, uid, payload in entities():
        if "value_template" in payload and payload["state_topic"].endswith("/state"):
            rendered[uid] = env.from_string(payload["value_template"]).render(value_json=state)
    assert rendered["maskdet_pi_1_door_alert"] == "ON"
    assert rendered["maskdet_pi_1_door_camera"] == "ON"
    assert rendered["maskdet_pi_1_door_in_view"] == "1"
    assert rendered["maskdet_pi_1_door_without_mask"] == "2"
    assert rendered["maskdet_pi_1_door_fps"] == "14.56"
    assert rendered["maskdet_pi_1_door_pause"] == "ON" and rendered["maskdet_pi_1_door_mute"] == "OFF"


def test_the_switches_send_valid_commands():
    from edge.service.commands import parse_command

    for platform, uid, payload in entities():
        if platform == "switch":
            for sent, value in ((payload["payload_on"], True), (payload["payload_off"], False)):
                camera, changes = parse_command(payload["command_topic"], sent.encode(),
                                                "maskdet/pi-1", ["door", "side"])
                assert list(changes.values()) == [value] and uid.endswith(f"{camera}_{list(changes)[0]}")


def test_the_no_mask_event_entity_renders_each_kind_and_ignores_other_events():
    """Rendered as HA renders it (Jinja2) against real event payloads: a no_mask decision is an
    event of its kind (`no_mask` when the model does not tell the kinds apart) with the person
    and score as attributes; a mask decision and the other events render `{}`, which HA's event
    entity ignores."""
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    [(_, _, entity)] = [e for e in entities() if e[0] == "event" and "_door_" in e[1]]
    assert entity["state_topic"] == "maskdet/pi-1/door/event"
    template = env.from_string(entity["value_template"])
    cases = [(payloads.event("no_mask", "door", 3, 0.93, (1, 2, 3, 4), "pi-1",
                             reason="mask_below_nose"), "mask_below_nose"),
             (payloads.event("no_mask", "door", 4, 0.81, (1, 2, 3, 4), "pi-1"), "no_mask"),
             (payloads.event("mask", "door", 5, 0.9, (1, 2, 3, 4), "pi-1"), None)]
    for event, kind in cases:
        jsonschema.validate(dict(event, seq=1), payloads.load_schema("event"))
        rendered = json.loads(template.render(value_json=event))
        if kind is None:
            assert rendered == {}
        else:
            assert rendered == {"event_type": kind, "track_id": event["track_id"],
                                "score": event["score"]}
            assert kind in entity["event_types"]
