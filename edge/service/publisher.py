"""MQTT through paho-mqtt 2.x: availability with a will, events at least once through the outbox,
retained per-camera state and snapshots, periodic stats, Home Assistant discovery, the command
topics `<prefix>/<device_id>/+/set`, reconnects with back-off.

paho runs its network loop in its own thread; every callback here catches and logs its own
exceptions so that a bug never stops that thread, and callbacks only post work to the sender
thread: paho calls on_publish while holding its own locks, so taking ours there could deadlock
against a publish() in progress. The sender thread alone sends events and owns the in-flight map.
"""
import json
import logging
import queue
import threading
import time

from edge.mqtt_client import connect_failure, guarded, make_client
from edge.service.discovery import discovery_messages
from edge.service.outbox import Outbox

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 20


def discovery_config(base, device_id, cameras, discovery_prefix, snapshots=False,
                     model_version=None, removed=()):
    """[(topic, payload or None)]: Home Assistant discovery of the device and each camera's
    entities (`edge.service.discovery`); None removes an entity."""
    return discovery_messages(base, device_id, cameras, discovery_prefix, snapshots,
                              model_version, removed)


class Publisher:
    """Everything the daemon says over MQTT."""

    def __init__(self, mqtt_config, device_id, cameras=(), client=None):
        self.config = mqtt_config
        self.device_id = device_id
        self.outbox = Outbox(mqtt_config.outbox_path, mqtt_config.outbox_max_events)
        self.cameras = list(cameras)
        self.base = f"{mqtt_config.prefix}/{device_id}"
        self.connected = threading.Event()
        self._lock = threading.Lock()  # guards _states and _snapshots only
        self._states = {}
        self._snapshots = {}  # camera -> the last snapshot's JPEG (re-sent after a reconnect)
        self.on_command = None  # callable(topic, payload bytes, retained) for <base>/+/set
        self.snapshots_announced = False  # Home Assistant: announce the image entities
        self.model_version = None  # Home Assistant: the device's model_id
        self._removed = []  # cameras whose HA entities are to be removed
        self._in_flight = {}  # paho mid -> outbox seq; the sender thread's alone
        self._work = queue.Queue()
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._last_failure = None  # the cause last logged at WARNING; repeats go to DEBUG
        self.client = client or self._make_client()

    def _make_client(self):
        client = make_client(self.config, f"maskdet-{self.device_id}")
        client.will_set(f"{self.base}/availability", "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.max_inflight_messages_set(MAX_IN_FLIGHT)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def start(self):
        """Connect in the background (paho retries with back-off until the broker answers)."""
        self._sender.start()
        self.client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self.client.loop_start()

    @guarded
    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            log.warning("MQTT broker %s:%s refused the connection: %s", self.config.host,
                        self.config.port, reason_code)
            return
        log.info("connected to MQTT broker %s:%s", self.config.host, self.config.port)
        self._last_failure = None
        try:
            client.publish(f"{self.base}/availability", "online", qos=1, retain=True)
            if self.on_command is not None:
                client.subscribe(self.command_topic, qos=1)
            with self._lock:
                states, snapshots = dict(self._states), dict(self._snapshots)
            for camera, payload in states.items():
                client.publish(f"{self.base}/{camera}/state", json.dumps(payload), qos=1, retain=True)
            for camera, jpeg in snapshots.items():
                client.publish(self.snapshot_topic(camera), jpeg, qos=1, retain=True)
            self._announce(client)
        finally:  # whatever failed above, events must flow
            self.connected.set()
            self._work.put(("connected", None))

    def retire_cameras(self, cameras):
        """Cameras a reload dropped: their Home Assistant entities are removed at the next
        announcement (a new connection after a reload that changed the MQTT settings)."""
        self._removed = [c for c in cameras if c not in self.cameras]

    def _announce(self, client):
        if not self.config.home_assistant.enabled:
            return
        messages = discovery_config(self.base, self.device_id, self.cameras,
                                    self.config.home_assistant.discovery_prefix,
                                    self.snapshots_announced, self.model_version, self._removed)
        for topic, payload in messages:
            client.publish(topic, "" if payload is None else json.dumps(payload), qos=1, retain=True)

    @property
    def command_topic(self):
        """The topic filter of the command topics: `<prefix>/<device_id>/+/set`."""
        return f"{self.base}/+/set"

    def snapshot_topic(self, camera):
        """Where a camera's last snapshot is published, retained."""
        return f"{self.base}/{camera}/snapshot"

    def set_command_handler(self, handler):
        """Receive the command topics: `handler(topic, payload, retained)` runs in paho's thread
        for each message (it must not block nor raise; the publisher logs what it raises)."""
        self.on_command = handler
        if handler is not None and self.connected.is_set():
            self.client.subscribe(self.command_topic, qos=1)

    @guarded
    def _on_message(self, client, userdata, message):
        handler = self.on_command
        if handler is not None:
            handler(message.topic, message.payload, bool(message.retain))

    @guarded
    def _on_connect_fail(self, client, userdata):
        """Say why the broker cannot be reached (a refused port, an untrusted certificate, a host
        name the certificate does not hold ...): at WARNING when the cause is new, else DEBUG."""
        cause = connect_failure(getattr(client, "last_connect_error", None), self.config.tls)
        level = logging.DEBUG if cause == self._last_failure else logging.WARNING
        self._last_failure = cause
        log.log(level, "MQTT broker %s:%s: %s; events wait in the outbox (%d) and the connection "
                "is retried with back-off", self.config.host, self.config.port, cause,
                self.outbox.depth)

    @guarded
    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        self.connected.clear()
        if reason_code.is_failure:
            log.warning("MQTT connection lost (%s); reconnecting with back-off", reason_code)

    @guarded
    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None):
        self._work.put(("ack", mid))

    def _send_loop(self):
        while not self._stop.is_set():
            try:
                kind, value = self._work.get(timeout=1.0)
            except queue.Empty:
                kind, value = "tick", None
            try:
                if kind == "ack":
                    seq = self._in_flight.pop(value, None)
                    if seq is not None:
                        self.outbox.acknowledge(seq)
                elif kind == "connected":
                    self._in_flight.clear()  # a new session: resend whatever is unacknowledged
                self._drain()
            except Exception:
                log.exception("MQTT sender: %s failed", kind)

    def _drain(self):
        """Send the oldest unacknowledged events, in order, while connected (sender thread)."""
        room = MAX_IN_FLIGHT - len(self._in_flight)
        if not self.connected.is_set() or room <= 0:
            return
        sent = set(self._in_flight.values())
        for seq, topic, payload in self.outbox.pending(room + len(sent)):
            if seq in sent:
                continue
            info = self.client.publish(topic, json.dumps(payload), qos=1)
            if info.rc != 0:
                break
            self._in_flight[info.mid] = seq
            room -= 1
            if room <= 0:
                break

    def publish_event(self, camera, payload):
        """Number an event (`seq`, kept across restarts) and store it in the outbox; the sender
        thread sends it when it can. Returns the numbered payload."""
        payload = dict(payload, seq=self.outbox.next_seq())
        self.outbox.put(payload["seq"], f"{self.base}/{camera}/event", payload)
        self._work.put(("event", None))
        return payload

    @property
    def idle(self):
        """True when every stored event has been acknowledged."""
        return self.outbox.depth == 0

    def outbox_status(self):
        """What stats report of the outbox: events waiting and dropped, where it is kept."""
        return {"depth": self.outbox.depth, "dropped": self.outbox.dropped,
                "drops": dict(getattr(self.outbox, "drops", {}) or {}),
                "storage": getattr(self.outbox, "storage", "disk"),
                "problem": getattr(self.outbox, "problem", None)}

    def drain(self, timeout):
        """Wait up to `timeout` s, while connected, until the broker has every stored event."""
        deadline = time.monotonic() + timeout
        while self.connected.is_set() and not self.idle and time.monotonic() < deadline:
            self._stop.wait(0.05)

    def publish_state(self, camera, payload):
        """Retained camera state (also re-sent after each reconnect)."""
        with self._lock:
            self._states[camera] = payload
        if self.connected.is_set():
            self.client.publish(f"{self.base}/{camera}/state", json.dumps(payload), qos=1, retain=True)

    def publish_snapshot(self, camera, jpeg):
        """A camera's last snapshot (JPEG bytes), retained (also re-sent after each reconnect)."""
        with self._lock:
            self._snapshots[camera] = jpeg
        if self.connected.is_set():
            self.client.publish(self.snapshot_topic(camera), jpeg, qos=1, retain=True)

    def publish_stats(self, payload):
        """Periodic statistics, QoS 0."""
        if self.connected.is_set():
            self.client.publish(f"{self.base}/stats", json.dumps(payload), qos=0)

    def set_cameras(self, cameras, snapshots=None):
        """A reload changed the cameras (or whether snapshots are published) while the connection
        stays: announce them now (Home Assistant discovery, when enabled) and after each
        reconnect; the entities of cameras no longer here are removed."""
        self._removed = [c for c in self.cameras if c not in cameras]
        self.cameras = list(cameras)
        if snapshots is not None:
            self.snapshots_announced = snapshots
        if self.connected.is_set():
            self._announce(self.client)

    def close(self, timeout=5.0):
        """Publish `offline`, wait for it, disconnect, close the outbox (what it holds is kept
        for the next start)."""
        self._stop.set()
        if self._sender.is_alive():
            self._sender.join(timeout)
        try:
            if self.connected.is_set():
                info = self.client.publish(f"{self.base}/availability", "offline", qos=1, retain=True)
                info.wait_for_publish(timeout)
            self.client.disconnect()
        except (RuntimeError, ValueError, OSError) as exc:
            log.warning("MQTT shutdown: %s", exc)
        finally:
            self.client.loop_stop()
            self.outbox.close()
