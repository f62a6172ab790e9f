"""The publisher against a real mosquitto on loopback: nothing mocked on the network."""
import json

import jsonschema

from edge.service import payloads
from edge.config.schema import HomeAssistantConfig, MqttConfig
from edge.mqtt_client import read_password
from edge.service.publisher import Publisher
from tests.conftest import Broker, Subscriber


def mqtt_config(broker, **kw):
    return MqttConfig(host=broker.host, port=broker.port, prefix="maskdet", keepalive_s=5, **kw)


def make_event(kind="no_mask"):
    return payloads.event(kind, "door", 1, 0.9, (1, 2, 3, 4), "pi-test")


def mqtt_config_at(broker, tmp_path, **kw):
    return mqtt_config(broker, outbox_path=str(tmp_path / "o.db"), **kw)


def events(messages):
    return [json.loads(p) for t, p, _ in messages if t.endswith("/event")]


def test_events_state_and_availability_arrive_and_match_the_schemas(broker, tmp_path):
    sub = Subscriber(broker)
    pub = Publisher(mqtt_config_at(broker, tmp_path), "pi-test", ["door"])
    pub.start()
    assert pub.connected.wait(10)
    for _ in range(3):
        pub.publish_event("door", make_event())
    pub.publish_state("door", payloads.state(True, 1, 1, 1, 12.0, "cpu", True))
    got = sub.wait_for(lambda m: len(events(m)) == 3 and any(t.endswith("/state") for t, _, _ in m))
    for e in events(got):
        jsonschema.validate(e, payloads.load_schema("event"))
    assert [e["seq"] for e in events(got)] == [1, 2, 3]
    assert ("maskdet/pi-test/availability", "online", False) in got or \
        ("maskdet/pi-test/availability", "online", True) in got
    sub.wait_for(lambda m: False, timeout=0.3)
    assert pub.outbox_status()["depth"] == 0
    pub.close()
    final = sub.wait_for(lambda m: m[-1][1] == "offline")
    assert final[-1][:2] == ("maskdet/pi-test/availability", "offline")
    sub.close()


def test_retained_state_and_availability_greet_a_late_subscriber(broker, tmp_path):
    pub = Publisher(mqtt_config_at(broker, tmp_path), "pi-test", ["door"])
    pub.start()
    assert pub.connected.wait(10)
    pub.publish_state("door", payloads.state(False, 0, 0, 0, 10.0, "cpu", True))
    Subscriber(broker, "nothing").close()  # a round trip so the broker has stored them
    late = Subscriber(broker, "maskdet/#")
    got = late.wait_for(lambda m: len(m) >= 2)
    assert {t for t, _, retained in got if retained} >= {"maskdet/pi-test/availability",
                                                        "maskdet/pi-test/door/state"}
    late.close()
    pub.close()


def first_copies(received):
    """The events in the order they first arrived, each `id` once (as a subscriber keeps them)."""
    seen, kept = set(), []
    for event in received:
        if event["id"] not in seen:
            seen.add(event["id"])
            kept.append(event)
    return kept


def test_events_published_while_the_broker_is_down_arrive_in_order_after_it_returns(tmp_path):
    # A broker with persistence and a subscriber with a persistent session, subscribed before
    # the outage: whichever of the two reconnects first, the broker queues for the subscriber.
    broker = Broker(tmp_path, persistence=True).start()
    sub = Subscriber(broker, "maskdet/+/+/event", client_id="monitor")
    pub = Publisher(mqtt_config_at(broker, tmp_path), "pi-test", ["door"])
    pub.start()
    assert pub.connected.wait(10)
    broker.stop()
    for _ in range(5):
        pub.publish_event("door", make_event())
    assert pub.outbox_status()["depth"] == 5
    broker.start()
    got = sub.wait_for(lambda m: len(first_copies(events(m))) >= 5, timeout=30)
    # at least once (DESIGN.md): a resent copy may arrive again; subscribers drop it by `id`
    assert [e["seq"] for e in first_copies(events(got))] == [1, 2, 3, 4, 5]
    sub.close()
    pub.close()
    broker.stop()


def test_the_outbox_survives_a_restart_of_the_daemon(broker, tmp_path):
    offline = MqttConfig(host=broker.host, port=1, outbox_path=str(tmp_path / "o.db"))
    first = Publisher(offline, "pi-test", ["door"])  # never connects: the events stay stored
    for _ in range(2):
        first.publish_event("door", make_event("mask"))
    first.close()
    sub = Subscriber(broker)
    pub = Publisher(mqtt_config_at(broker, tmp_path), "pi-test", ["door"])
    pub.start()
    got = sub.wait_for(lambda m: len(events(m)) == 2)
    assert [e["seq"] for e in events(got)] == [1, 2]
    pub.close()
    sub.close()


def test_an_exception_in_a_paho_callback_is_logged_and_events_still_flow(broker, tmp_path, caplog,
                                                                          monkeypatch):
    import edge.service.publisher as publisher_module

    def broken_discovery(*args):
        raise RuntimeError("bad discovery payload")

    monkeypatch.setattr(publisher_module, "discovery_config", broken_discovery)
    sub = Subscriber(broker)
    config = mqtt_config_at(broker, tmp_path, home_assistant=HomeAssistantConfig(enabled=True))
    pub = Publisher(config, "pi-test", ["door"])
    pub.start()
    assert pub.connected.wait(10)
    pub.publish_event("door", make_event())
    got = sub.wait_for(lambda m: len(events(m)) >= 1)
    assert [e["seq"] for e in events(got)] == [1]
    assert "error in MQTT callback _on_connect" in caplog.text and "bad discovery payload" in caplog.text
    # paho's network thread lived on: a later event still goes out and is acknowledged
    pub.publish_event("door", make_event("mask"))
    got = sub.wait_for(lambda m: len(events(m)) >= 2)
    assert [(e["seq"], e["type"]) for e in events(got)] == [(1, "no_mask"), (2, "mask")]
    pub.drain(10)
    assert pub.idle
    pub.close()
    sub.close()


def test_a_failure_while_acknowledging_resends_the_event_with_the_same_id(broker, tmp_path, caplog):
    pub = Publisher(mqtt_config_at(broker, tmp_path), "pi-test", ["door"])
    outbox = pub.outbox
    real_ack, calls = outbox.acknowledge, []

    def flaky_ack(seq):
        calls.append(seq)
        if len(calls) == 1:
            raise RuntimeError("disk hiccup")
        real_ack(seq)

    outbox.acknowledge = flaky_ack
    sub = Subscriber(broker)
    pub.start()
    assert pub.connected.wait(10)
    pub.publish_event("door", make_event())
    pub.publish_event("door", make_event())
    got = sub.wait_for(lambda m: len(events(m)) >= 3)
    seqs = [e["seq"] for e in events(got)]
    assert sorted(seqs) == [1, 1, 2]  # at least once: the unacknowledged event went again
    assert len({e["id"] for e in events(got)}) == 2  # and subscribers de-duplicate by id
    assert "disk hiccup" in caplog.text
    sub.wait_for(lambda m: False, timeout=0.5)
    assert pub.outbox_status()["depth"] == 0
    pub.close()
    sub.close()


def test_home_assistant_discovery_announces_each_camera(broker, tmp_path):
    """Eight entities a camera (tests/service/test_discovery.py checks each payload), and an
    empty retained config removing the image entity while snapshots are off."""
    sub = Subscriber(broker, "homeassistant/#")
    config = mqtt_config_at(broker, tmp_path, home_assistant=HomeAssistantConfig(enabled=True))
    pub = Publisher(config, "pi-test", ["door", "side"])
    pub.start()
    got = sub.wait_for(lambda m: len(m) == 18)
    configs = {t: p for t, p, _ in got}
    assert len(configs) == 18
    for camera in ("door", "side"):
        alert = json.loads(configs[f"homeassistant/binary_sensor/maskdet_pi_test_{camera}_alert/config"])
        assert alert["state_topic"] == f"maskdet/pi-test/{camera}/state"
        assert alert["availability_topic"] == "maskdet/pi-test/availability"
        assert configs[f"homeassistant/image/maskdet_pi_test_{camera}_snapshot/config"] == ""
    assert sum(1 for p in configs.values() if p) == 16
    late = Subscriber(broker, "homeassistant/#")  # the broker keeps them for Home Assistant
    kept = late.wait_for(lambda m: len(m) == 16)
    assert len(kept) == 16 and all(retained for _, _, retained in kept)
    late.close()
    pub.close()
    sub.close()


def test_the_password_comes_from_the_environment_or_a_credential_file(tmp_path):
    config = MqttConfig()
    assert read_password(config, {"MASKDET_MQTT_PASSWORD": "s3cret"}) == "s3cret"
    (tmp_path / "mqtt-password").write_text("from-credential\n")
    assert read_password(config, {"CREDENTIALS_DIRECTORY": str(tmp_path)}) == "from-credential"
    assert read_password(config, {}) is None


def test_a_new_connection_after_a_reload_removes_the_entities_of_a_dropped_camera(broker, tmp_path):
    config = mqtt_config_at(broker, tmp_path, home_assistant=HomeAssistantConfig(enabled=True))
    first = Publisher(config, "pi-test", ["door", "side"])
    first.start()
    assert first.connected.wait(10)
    first.close()
    sub = Subscriber(broker, "homeassistant/binary_sensor/maskdet_pi_test_side_alert/config")
    assert sub.wait_for(lambda m: m and m[-1][1])  # the retained announcement of "side"
    second = Publisher(config, "pi-test", ["door"])  # the reloaded config dropped "side"
    second.retire_cameras(["door", "side"])
    second.start()
    got = sub.wait_for(lambda m: m[-1][1] == "")
    assert got[-1][1] == ""  # an empty retained config: Home Assistant removes the entity
    second.close()
    sub.close()
