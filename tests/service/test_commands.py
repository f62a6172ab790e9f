"""Commands on <prefix>/<device_id>/<camera>/set: what is accepted, and that everything else
(huge, binary, wrong JSON types, unknown commands, wrong camera, retained) is counted, logged
sparingly and ignored; then the same against a real mosquitto, where a flood of hostile messages
leaves the publisher's network thread alive."""
import json
import logging

import pytest

from edge.config.schema import MqttConfig
from edge.service import payloads
from edge.service.commands import (MAX_COMMAND_BYTES, CommandError, CommandHandler, Controls,
                                   parse_command)
from edge.service.metrics import Metrics
from edge.service.publisher import Publisher
from tests.conftest import Subscriber

BASE = "maskdet/pi"
CAMERAS = ["door", "side"]


@pytest.mark.parametrize("payload, expected", [
    (b'{"mute": true}', {"mute": True}),
    (b'{"pause": false}', {"pause": False}),
    (b' {"mute": false, "pause": true} ', {"mute": False, "pause": True}),
])
def test_valid_commands(payload, expected):
    assert parse_command(f"{BASE}/door/set", payload, BASE, CAMERAS) == ("door", expected)


HOSTILE = [
    ("too_large", f"{BASE}/door/set", b'{"mute": true}' + b" " * MAX_COMMAND_BYTES),
    ("too_large", f"{BASE}/door/set", b"x" * 10_000_000),
    ("not_utf8", f"{BASE}/door/set", b"\xff\xfe\x00\x81binary"),
    ("not_json", f"{BASE}/door/set", b"ON"),
    ("not_json", f"{BASE}/door/set", b'{"mute": NaN}'),
    ("not_json", f"{BASE}/door/set", b'{"mute": Infinity}'),
    ("not_json", f"{BASE}/door/set", b""),
    ("not_json", f"{BASE}/door/set", b"[" * 200),
    ("not_an_object", f"{BASE}/door/set", b"true"),
    ("not_an_object", f"{BASE}/door/set", b'["mute", true]'),
    ("not_an_object", f"{BASE}/door/set", b"{}"),
    ("not_an_object", f"{BASE}/door/set", b'"{\\"mute\\": true}"'),
    ("unknown_command", f"{BASE}/door/set", b'{"reboot": true}'),
    ("unknown_command", f"{BASE}/door/set", b'{"mute": true, "__proto__": 1}'),
    ("not_a_boolean", f"{BASE}/door/set", b'{"mute": "true"}'),
    ("not_a_boolean", f"{BASE}/door/set", b'{"mute": 1}'),
    ("not_a_boolean", f"{BASE}/door/set", b'{"pause": null}'),
    ("not_a_boolean", f"{BASE}/door/set", b'{"pause": {"on": true}}'),
    ("unknown_camera", f"{BASE}/garage/set", b'{"mute": true}'),
    ("unknown_camera", f"{BASE}/+/set", b'{"mute": true}'),
    ("unknown_camera", f"{BASE}/door/x/set", b'{"mute": true}'),
    ("wrong_topic", "other/door/set", b'{"mute": true}'),
]


@pytest.mark.parametrize("reason, topic, payload", HOSTILE)
def test_hostile_payloads_are_refused_with_a_reason(reason, topic, payload):
    with pytest.raises(CommandError) as caught:
        parse_command(topic, payload, BASE, CAMERAS)
    assert caught.value.reason == reason


def test_the_handler_applies_counts_and_logs_each_refusal_reason_once_a_minute(caplog):
    now = [0.0]
    controls, metrics = Controls(), Metrics()
    handle = CommandHandler(BASE, CAMERAS, controls, metrics, clock=lambda: now[0])
    with caplog.at_level(logging.DEBUG):
        handle(f"{BASE}/door/set", b'{"mute": true}')
        for _ in range(50):
            handle(f"{BASE}/door/set", b"garbage")
        handle(f"{BASE}/side/set", b'{"pause": true}', retained=True)
        now[0] = 61.0
        handle(f"{BASE}/door/set", b"garbage")
    assert controls.muted("door") and not controls.paused("side") and not controls.muted("side")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3, warnings
    assert "49 more like it not logged" in warnings[2] and "retained" in warnings[1]
    assert metrics.commands == {"accepted": 1, "rejected_not_json": 51, "rejected_retained": 1}


def test_a_bug_in_applying_a_command_never_raises(caplog):
    class Broken(Controls):
        def apply(self, camera, changes):
            raise RuntimeError("bug")

    CommandHandler(BASE, CAMERAS, Broken())(f"{BASE}/door/set", b'{"mute": true}')
    assert "unexpected error" in caplog.text


def sender_for(broker):
    """A bare paho client that only publishes."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def test_hostile_commands_over_a_real_broker_are_ignored_and_the_publisher_lives_on(broker, tmp_path):
    sender = sender_for(broker)
    # left retained before the daemon starts: a stale pause must not pause the door
    sender.publish(f"{BASE}/side/set", b'{"pause": true}', qos=1, retain=True).wait_for_publish(10)
    controls, metrics = Controls(), Metrics()
    config = MqttConfig(host=broker.host, port=broker.port, keepalive_s=5,
                        outbox_path=str(tmp_path / "o.db"))
    pub = Publisher(config, "pi", CAMERAS)
    pub.set_command_handler(CommandHandler(pub.base, CAMERAS, controls, metrics))
    sub = Subscriber(broker, "maskdet/+/+/event")
    pub.start()
    assert pub.connected.wait(10)
    sub.wait_for(lambda m: metrics.commands.get("rejected_retained"), timeout=10)
    assert metrics.commands == {"rejected_retained": 1} and not controls.paused("side")
    for _, topic, payload in HOSTILE:
        if "+" not in topic:  # a wildcard cannot be published to
            sender.publish(topic, payload, qos=1).wait_for_publish(10)
    sender.publish(f"{BASE}/door/set", b'{"mute": true}', qos=1).wait_for_publish(10)
    sender.publish(f"{BASE}/side/set", b'{"pause": true}', qos=1).wait_for_publish(10)
    sub.wait_for(lambda m: controls.paused("side"), timeout=10)
    assert controls.muted("door") and controls.paused("side")
    refused = sum(n for result, n in metrics.commands.items() if result != "accepted")
    assert refused == 1 + len(HOSTILE) - 1 - 2  # + cannot be sent; other/..., door/x/set: not ours
    assert metrics.commands["accepted"] == 2
    # paho's thread lived through it all: an event still goes out and is acknowledged
    pub.publish_event("door", payloads.event("no_mask", "door", 1, 0.9, (0, 0, 9, 9), "pi"))
    got = sub.wait_for(lambda m: m)
    assert [json.loads(p)["seq"] for t, p, _ in got] == [1]
    sender.publish(f"{BASE}/side/set", b"", qos=1, retain=True).wait_for_publish(10)  # clear it
    sender.loop_stop()
    pub.close()
    sub.close()
