"""Home Assistant MQTT discovery: the device and each camera's entities, one retained config
message per entity on `<discovery_prefix>/<platform>/<unique_id>/config`.

Per camera: the alert (binary_sensor, problem), the camera's connectivity (binary_sensor,
connectivity), people in view, people without a mask since start and frames per second
(sensors), a switch to mute its buzzer and one to pause its detection (commands on
`<prefix>/<device_id>/<camera>/set`), each person decided without a mask (an `event` entity whose
event type is the decision's kind: a bare face or a mask worn below the nose), and, when
snapshots are published, the last snapshot (an `image` entity). Every entity belongs to one HA
device with `model` and `sw_version`.

The keys follow Home Assistant's current MQTT schemas (2025.10 and later): `default_entity_id`
(`<platform>.<object id>`) instead of the deprecated `object_id`, full key names (no
abbreviations), and an `origin`. tests/service/test_discovery.py checks every payload against an
allow-list per platform taken from the HA documentation.
"""
import edge
from edge.service.payloads import REASONS

MANUFACTURER = "maskdet"
MODEL = "face-mask detector (Raspberry Pi)"


def unique_id(device_id, camera, what):
    """`maskdet_<device>_<camera>_<what>` with `_` for `-` (as earlier versions named the alert,
    so HA keeps its entity); in lower case it is also the entity's object id."""
    return f"maskdet_{device_id}_{camera}_{what}".replace("-", "_")


def device_info(device_id, model_version=None, configuration_url=None):
    """The HA device every entity of this daemon belongs to."""
    device = {"identifiers": [f"maskdet_{device_id}"], "name": f"maskdet {device_id}",
              "manufacturer": MANUFACTURER, "model": MODEL, "sw_version": edge.__version__}
    if model_version:
        device["model_id"] = model_version
    if configuration_url:
        device["configuration_url"] = configuration_url
    return device


def origin():
    """Who published the discovery config (HA shows it in its logs)."""
    return {"name": "maskdet", "sw_version": edge.__version__}


def _entity(platform, base, device, camera, what, name, **keys):
    uid = unique_id(device["identifiers"][0][len("maskdet_"):], camera, what)
    return platform, uid, dict({
        "name": name, "unique_id": uid, "default_entity_id": f"{platform}.{uid.lower()}",
        "availability_topic": f"{base}/availability",
        "payload_available": "online", "payload_not_available": "offline",
        "device": device, "origin": origin()}, **keys)


def camera_entities(base, device, camera, snapshots=False):
    """[(platform, unique_id, payload)] of one camera's entities; `device`: `device_info`."""
    state = f"{base}/{camera}/state"
    command = f"{base}/{camera}/set"
    entities = [
        _entity("binary_sensor", base, device, camera, "alert", f"{camera} no-mask alert",
                state_topic=state, device_class="problem",
                value_template="{{ 'ON' if value_json.alert else 'OFF' }}"),
        _entity("binary_sensor", base, device, camera, "camera", f"{camera} camera",
                state_topic=state, device_class="connectivity", entity_category="diagnostic",
                value_template="{{ 'ON' if value_json.camera_ok else 'OFF' }}"),
        _entity("sensor", base, device, camera, "in_view", f"{camera} people in view",
                state_topic=state, state_class="measurement", unit_of_measurement="people",
                icon="mdi:account-group", value_template="{{ value_json.in_view }}"),
        _entity("sensor", base, device, camera, "without_mask", f"{camera} people without a mask",
                state_topic=state, state_class="total_increasing", unit_of_measurement="people",
                icon="mdi:account-alert", value_template="{{ value_json.without_mask }}"),
        _entity("sensor", base, device, camera, "fps", f"{camera} frames per second",
                state_topic=state, state_class="measurement", unit_of_measurement="fps",
                entity_category="diagnostic", suggested_display_precision=1,
                icon="mdi:speedometer", value_template="{{ value_json.fps }}"),
        _switch(base, device, camera, "mute", f"{camera} mute buzzer", "muted", "mdi:volume-off",
                command),
        _switch(base, device, camera, "pause", f"{camera} pause detection", "paused",
                "mdi:pause-circle", command),
    ]
    entities.append(_no_mask_event(base, device, camera))
    if snapshots:
        entities.append(_entity("image", base, device, camera, "snapshot", f"{camera} last snapshot",
                                image_topic=f"{base}/{camera}/snapshot", content_type="image/jpeg"))
    return entities


# The camera's events rendered for HA's event entity: a no_mask decision becomes its kind (the
# event's `reason`; `no_mask` from a model that does not tell the kinds apart), with the person
# and the score as attributes; every other event renders `{}`, which HA ignores.
NO_MASK_EVENT_TEMPLATE = (
    "{% if value_json.type == 'no_mask' %}"
    '{"event_type": "{{ value_json.reason | default(\'no_mask\') }}", '
    '"track_id": {{ value_json.track_id }}, "score": {{ value_json.score }}}'
    "{% else %}{}{% endif %}")


def _no_mask_event(base, device, camera):
    return _entity("event", base, device, camera, "no_mask", f"{camera} person without a mask",
                   state_topic=f"{base}/{camera}/event", event_types=list(REASONS),
                   icon="mdi:face-mask-outline", value_template=NO_MASK_EVENT_TEMPLATE)


def _switch(base, device, camera, command, name, field, icon, command_topic):
    return _entity("switch", base, device, camera, command, name,
                   command_topic=command_topic, state_topic=f"{base}/{camera}/state",
                   payload_on=f'{{"{command}": true}}', payload_off=f'{{"{command}": false}}',
                   state_on="ON", state_off="OFF", optimistic=False, retain=False,
                   entity_category="config", icon=icon,
                   value_template=f"{{{{ 'ON' if value_json.{field} else 'OFF' }}}}")


def config_topic(discovery_prefix, platform, uid):
    """Where HA reads one entity's config."""
    return f"{discovery_prefix}/{platform}/{uid}/config"


def discovery_messages(base, device_id, cameras, discovery_prefix, snapshots=False,
                       model_version=None, removed=()):
    """[(topic, payload or None)] announcing every camera's entities (retained); payload None
    (an empty retained message) removes an entity: the image entity when snapshots are off, and
    every entity of each camera in `removed`."""
    device = device_info(device_id, model_version)
    messages = []
    for camera in cameras:
        for platform, uid, payload in camera_entities(base, device, camera, snapshots):
            messages.append((config_topic(discovery_prefix, platform, uid), payload))
        if not snapshots:
            messages.append((config_topic(discovery_prefix, "image",
                                          unique_id(device_id, camera, "snapshot")), None))
    for camera in removed:
        for platform, uid, _ in camera_entities(base, device, camera, snapshots=True):
            messages.append((config_topic(discovery_prefix, platform, uid), None))
    return messages
