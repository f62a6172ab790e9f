"""The monitor's MQTT session against a real mosquitto, with the daemon's own Publisher: QoS 1
and a persistent session (nothing published while the monitor is away is lost), every event
stored once (redeliveries, duplicates, a broker outage), retained state and availability, hostile
payloads refused without harm, and a database outage reported and survived."""
import json
import logging
import time

import paho.mqtt.client as mqtt
import pytest

from edge.config.schema import MqttConfig
from edge.service import payloads as daemon_payloads
from edge.service.publisher import Publisher
from monitor.store import Filters
from tests.conftest import Broker
from tests.monitor.conftest import get, get_json, wait_until, write_config
from tests.monitor.test_payloads import HOSTILE


def publisher(broker, device, tmp_path):
    config = MqttConfig(host=broker.host, port=broker.port, keepalive_s=5,
                        outbox_path=str(tmp_path / f"outbox-{device}.db"))
    pub = Publisher(config, device, ["door"])
    pub.start()
    assert pub.connected.wait(10)
    return pub


def event(device, kind="no_mask"):
    return daemon_payloads.event(kind, "door", 1, 0.9, (1, 2, 3, 4), device)


def stored_ids(monitor):
    return [r["id"] for r in monitor.store.iter_events(Filters())]


def raw_client(broker):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def test_what_is_published_while_the_monitor_is_away_arrives_after_its_restart(broker, tmp_path, start_monitor):
    config = write_config(tmp_path, broker)
    first = start_monitor(config)
    assert first.connected()
    first.stop()  # the broker keeps the session and queues QoS 1 messages for it
    pub = publisher(broker, "pi-a", tmp_path)
    sent = [pub.publish_event("door", event("pi-a"))["id"] for _ in range(5)]
    pub.drain(10)
    assert pub.idle
    second = start_monitor(config)
    assert wait_until(lambda: len(stored_ids(second)) == 5), stored_ids(second)
    assert sorted(stored_ids(second)) == sorted(sent)
    pub.close()


def test_a_redelivered_event_is_stored_once(broker, tmp_path, start_monitor):
    config = write_config(tmp_path, broker)
    crashing = start_monitor(config)
    assert crashing.connected()
    # As if the monitor died between its commit and its PUBACK: the broker delivers again.
    crashing.ingest.client.ack = lambda mid, qos: 0
    pub = publisher(broker, "pi-a", tmp_path)
    once = pub.publish_event("door", event("pi-a"))
    assert wait_until(lambda: stored_ids(crashing) == [once["id"]])
    crashing.stop()
    again = start_monitor(config)
    assert wait_until(lambda: again.ingest.status.duplicates >= 1), again.ingest.status
    # ... and a publisher that replays its outbox sends the same id again: still one row.
    raw = raw_client(broker)
    raw.publish("maskdet/pi-a/door/event", json.dumps(once), qos=1).wait_for_publish(5)
    assert wait_until(lambda: again.ingest.status.duplicates >= 2)
    assert stored_ids(again) == [once["id"]]
    raw.disconnect()
    raw.loop_stop()
    pub.close()


def test_a_broker_outage_loses_nothing(tmp_path, start_monitor):
    broker = Broker(tmp_path, persistence=True).start()
    try:
        monitor = start_monitor(write_config(tmp_path, broker))
        assert monitor.connected()
        pub = publisher(broker, "pi-a", tmp_path)
        before = [pub.publish_event("door", event("pi-a"))["id"] for _ in range(3)]
        assert wait_until(lambda: len(stored_ids(monitor)) == 3)
        broker.stop()
        during = [pub.publish_event("door", event("pi-a"))["id"] for _ in range(4)]  # in the outbox
        assert wait_until(lambda: not monitor.ingest.status.connected)
        status = get_json(f"{monitor.url}/api/health")
        assert status["mqtt"]["connected"] is False
        broker.start()
        assert wait_until(lambda: len(stored_ids(monitor)) == 7, timeout=30), stored_ids(monitor)
        assert sorted(stored_ids(monitor)) == sorted(before + during)
        pub.close()
    finally:
        broker.stop()


def test_retained_state_and_availability_reach_a_monitor_started_later(broker, tmp_path, start_monitor):
    pub = publisher(broker, "pi-a", tmp_path)
    pub.publish_state("door", daemon_payloads.state(True, 3, 1, 2, 14.5, "edgetpu", True))
    time.sleep(0.3)
    monitor = start_monitor(write_config(tmp_path, broker))
    device = wait_until(lambda: next(iter(get_json(f"{monitor.url}/api/devices")["devices"]), None))
    assert wait_until(lambda: get_json(f"{monitor.url}/api/devices")["devices"][0]["cameras"])
    device = get_json(f"{monitor.url}/api/devices")["devices"][0]
    assert device["online"] is True
    camera = device["cameras"][0]
    assert camera["alert"] is True and camera["accelerator"] == "edgetpu" and camera["in_view"] == 2
    pub.close()  # publishes offline
    assert wait_until(lambda: get_json(f"{monitor.url}/api/devices")["devices"][0]["online"] is False)
    device = get_json(f"{monitor.url}/api/devices")["devices"][0]
    assert device["availability_since"] and device["health"]["status"] == "offline"


def test_hostile_payloads_are_logged_and_ignored_and_the_monitor_goes_on(broker, tmp_path, start_monitor, caplog):
    caplog.set_level(logging.WARNING, logger="monitor.ingest")
    monitor = start_monitor(write_config(tmp_path, broker))
    assert monitor.connected()
    raw = raw_client(broker)
    hostile = [("maskdet/pi-a/door/event", payload) for payload in HOSTILE.values()]
    hostile += [("maskdet/pi-a/availability", b"\x00" * 10), ("maskdet/pi-a/door/state", b"{}"),
                ("maskdet/pi-a/stats", b"null"), ("maskdet/pi-a/door/snapshot", b"<svg onload=alert(1)>"),
                ("maskdet/" + "x" * 200 + "/availability", b"online")]
    for topic, payload in hostile:
        raw.publish(topic, payload, qos=1).wait_for_publish(5)
    good = event("pi-a")
    good["seq"] = 1
    raw.publish("maskdet/pi-a/door/event", json.dumps(good), qos=1).wait_for_publish(5)
    assert wait_until(lambda: stored_ids(monitor) == [good["id"]]), monitor.ingest.status
    assert monitor.ingest.status.rejected == len(hostile)
    assert monitor.ingest._writer.is_alive()
    refused = [r for r in caplog.records if "refused an MQTT message" in r.getMessage()]
    assert refused and len(refused) <= 10 + 1  # rate-limited
    health = get_json(f"{monitor.url}/api/health")
    assert health["ingest"]["rejected"] == len(hostile) and health["ingest"]["last_rejected"]
    raw.disconnect()
    raw.loop_stop()


def test_a_database_outage_is_reported_and_nothing_is_lost(broker, tmp_path, start_monitor, caplog, monkeypatch):
    from tests.monitor.conftest import PG_PASSWORD, PostgresCluster

    pytest.importorskip("psycopg")
    caplog.set_level(logging.ERROR, logger="monitor.ingest")
    monkeypatch.setattr("monitor.ingest.RETRY_MAX_S", 1.0)
    cluster = PostgresCluster()  # its own: this test stops it
    try:
        monitor = start_monitor(write_config(tmp_path, broker, database=cluster.new_database()),
                                environ={"MASKDET_DB_PASSWORD": PG_PASSWORD})
        assert monitor.connected()
        pub = publisher(broker, "pi-a", tmp_path)
        first = pub.publish_event("door", event("pi-a"))["id"]
        assert wait_until(lambda: stored_ids(monitor) == [first])
        cluster.stop()
        lost_db = [pub.publish_event("door", event("pi-a"))["id"] for _ in range(3)]
        assert wait_until(lambda: monitor.ingest.status.db_error, timeout=20)
        health = get_json(f"{monitor.url}/api/health")
        assert health["database"]["error"] and health["database"]["error_since"]
        assert any("database error" in r.getMessage() for r in caplog.records)
        status, _, _ = get(f"{monitor.url}/api/events")
        assert status == 503  # the API says so too
        cluster.start()
        assert wait_until(lambda: monitor.ingest.status.db_error is None, timeout=30)
        assert wait_until(lambda: len(stored_ids(monitor)) == 4, timeout=20)
        assert sorted(stored_ids(monitor)) == sorted([first] + lost_db)
        pub.close()
    finally:
        cluster.destroy()
