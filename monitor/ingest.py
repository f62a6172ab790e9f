"""The monitor's MQTT session and the writer that stores what arrives.

The session is persistent (`clean_session` off, a fixed client id) and subscribes to `<prefix>/#`
at QoS 1, so the broker keeps what is published while the monitor is away. Acknowledgements are
manual: a QoS 1 message is acknowledged (PUBACK) only once the batch that holds it is committed
to the database, so a message the monitor has not stored is still the broker's to deliver again,
after a crash, a database outage or a restart. Events are stored once by id whatever arrives
twice.

paho runs its network loop in a thread of its own; its callbacks only queue work and log their
own exceptions (`guarded`). The writer thread takes the queue in batches, validates each message
(`payloads.parse_message`), stores the batch in one transaction and then acknowledges it, in
arrival order. A malformed or hostile payload is logged (rate-limited) and acknowledged, never
stored and never fatal. A database error is logged and shown in `status`, and the batch retried
with back-off; the queue is bounded, so meanwhile paho's thread waits and the broker holds the rest.

An acknowledgement belongs to one connection: message ids are reused on a new one. Each queued
message carries the connection's generation, and only those of the current connection are
acknowledged (the broker resends the others, which the database then finds stored).
"""
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from edge.errors import DataError
from edge.mqtt_client import connect_failure, guarded, make_client
from monitor.payloads import MAX_JSON_BYTES, parse_message
from monitor.store import DatabaseError, WriteResult

log = logging.getLogger(__name__)

QUEUE_MAX = 2000  # messages waiting for the writer; beyond it paho's thread waits
BATCH_MAX = 500
RETRY_MAX_S = 30.0
DB_ERROR_REPEAT_S = 60.0  # a lasting database error is logged again this often


@dataclass
class Incoming:
    """A message as paho delivered it, before validation."""

    topic: Optional[str]  # None: not UTF-8
    payload: bytes
    qos: int
    mid: int
    generation: int
    received_ms: int
    retain: bool = False
    size: int = -1  # the payload's size when it was too big to queue (then `payload` is empty)


@dataclass
class Status:
    """What the monitor's health shows of the ingest (read by other threads; plain values)."""

    connected: bool = False
    broker_problem: Optional[str] = None
    received: int = 0
    stored_events: int = 0
    duplicates: int = 0
    rejected: int = 0
    db_error: Optional[str] = None
    db_error_since_ms: Optional[int] = None
    last_write_ms: Optional[int] = None
    last_rejected: list = field(default_factory=list)  # the last few (topic, reason)


class RateLimit:
    """At most `burst` log lines per `period_s`; the rest are counted and summed up later."""

    def __init__(self, burst=10, period_s=60.0):
        self.burst, self.period_s = burst, period_s
        self.window_start, self.count, self.suppressed = 0.0, 0, 0

    def allow(self, now=None):
        """True when this line may be logged; a new window first reports what it suppressed."""
        now = time.monotonic() if now is None else now
        if now - self.window_start >= self.period_s:
            if self.suppressed:
                log.warning("%d more refused MQTT messages were not logged", self.suppressed)
            self.window_start, self.count, self.suppressed = now, 0, 0
        self.count += 1
        if self.count > self.burst:
            self.suppressed += 1
            return False
        return True


class Ingest:
    """The persistent MQTT session and the writer thread. `on_stored(WriteResult)` is called by
    the writer after each committed batch (the live feed)."""

    def __init__(self, config, store, on_stored=None, client=None):
        self.config = config
        self._max_payload = max(MAX_JSON_BYTES, config.snapshots.max_bytes)
        self.store = store
        self.on_stored = on_stored or (lambda result: None)
        self.status = Status()
        self.queue = queue.Queue(maxsize=QUEUE_MAX)
        self.heartbeat = time.monotonic()  # the writer's last sign of life (the watchdog reads it)
        self._ack_lock = threading.Lock()
        self._generation = 0
        self._connected = False
        self._busy = False
        self._stop = threading.Event()
        self._rejected_log = RateLimit()
        self._db_error_logged = 0.0
        self._writer = threading.Thread(target=self._write_loop, name="monitor-writer", daemon=True)
        self.client = client or self._make_client()

    # --- the MQTT session (paho's thread) ------------------------------------------------

    def _make_client(self):
        mq = self.config.mqtt
        client = make_client(mq, mq.client_id, clean_session=False, manual_ack=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self):
        """Start the writer, then connect in the background (paho retries with back-off)."""
        self._writer.start()
        mq = self.config.mqtt
        self.client.connect_async(mq.host, mq.port, mq.keepalive_s)
        self.client.loop_start()

    @guarded
    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        mq = self.config.mqtt
        if reason_code.is_failure:
            self.status.broker_problem = f"the broker refused the connection: {reason_code}"
            log.warning("MQTT broker %s:%s refused the connection: %s", mq.host, mq.port, reason_code)
            return
        with self._ack_lock:
            self._generation += 1
            self._connected = True
        self.status.connected, self.status.broker_problem = True, None
        resumed = "resumed its session" if flags.session_present else \
            "a new session (nothing was kept for it before)"
        log.info("connected to MQTT broker %s:%s as %s: %s", mq.host, mq.port, mq.client_id, resumed)
        client.subscribe(f"{mq.prefix}/#", qos=1)

    @guarded
    def _on_connect_fail(self, client, userdata):
        cause = connect_failure(getattr(client, "last_connect_error", None), self.config.mqtt.tls)
        level = logging.DEBUG if cause == self.status.broker_problem else logging.WARNING
        self.status.broker_problem = cause
        log.log(level, "MQTT broker %s:%s: %s; retrying with back-off", self.config.mqtt.host,
                self.config.mqtt.port, cause)

    @guarded
    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        with self._ack_lock:  # acknowledgements of that connection are void from here
            self._generation += 1
            self._connected = False
        self.status.connected = False
        if reason_code.is_failure:
            self.status.broker_problem = f"connection lost ({reason_code})"
            log.warning("MQTT connection lost (%s); reconnecting with back-off", reason_code)

    @guarded
    def _on_message(self, client, userdata, message):
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = None
        size = len(message.payload)
        payload = bytes(message.payload) if size <= self._max_payload else b""
        item = Incoming(topic, payload, message.qos, message.mid, self._generation,
                        int(time.time() * 1000), bool(message.retain),
                        size if size > self._max_payload else -1)
        while not self._stop.is_set():  # a full queue holds paho's thread: back-pressure
            try:
                self.queue.put(item, timeout=1.0)
                return
            except queue.Full:
                continue

    # --- the writer thread ---------------------------------------------------------------

    def _write_loop(self):
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            batch = self._take_batch()
            if not batch:
                continue
            self._busy = True
            try:
                self._handle(batch)
            except _Stopping:
                return
            except Exception:  # a bug must not end the writer; the batch stays unacknowledged
                log.exception("monitor writer: a batch of %d messages failed", len(batch))
            finally:
                self._busy = False

    def _take_batch(self):
        try:
            batch = [self.queue.get(timeout=0.5)]
        except queue.Empty:
            return []
        while len(batch) < BATCH_MAX:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _handle(self, batch):
        """Validate, store (retrying while the database fails), acknowledge, tell the feed."""
        messages = []
        for item in batch:
            message = self._parse(item)
            if message is not None:
                messages.append(message)
        self.status.received += len(batch)
        result = self._store(messages) if messages else WriteResult()
        self._acknowledge(batch)
        self.status.stored_events += len(result.new_events)
        self.status.duplicates += result.duplicates
        self.status.last_write_ms = int(time.time() * 1000)
        if result.duplicates:
            log.debug("%d duplicate events left out", result.duplicates)
        try:
            self.on_stored(result)
        except Exception:
            log.exception("live feed update failed")

    def _parse(self, item):
        """The Message of an Incoming, or None (not ours, or refused and logged)."""
        if item.topic is None:
            self._reject("(a topic that is not UTF-8)", "the topic is not UTF-8")
            return None
        if item.size >= 0:  # never queued whole: memory stays bounded whatever arrives
            self._reject(item.topic, f"payload of {item.size} bytes is over the limit of "
                                     f"{self._max_payload}")
            return None
        if item.retain and item.topic.endswith("/snapshot"):
            # The broker's retained copy of a camera's last snapshot, sent again at each
            # (re)connect: storing it would bring back a face past its retention.
            return None
        try:
            return parse_message(item.topic, item.payload, self.config.mqtt.prefix, item.received_ms,
                                 self.config.snapshots.max_bytes)
        except DataError as exc:
            self._reject(item.topic, str(exc))
        except Exception as exc:  # a payload no check foresaw: refused all the same
            log.exception("unexpected error reading a message on %s", item.topic[:200])
            self._reject(item.topic, f"unexpected {type(exc).__name__}")
        return None

    def _reject(self, topic, reason):
        self.status.rejected += 1
        self.status.last_rejected = (self.status.last_rejected + [(topic[:200], reason)])[-5:]
        if self._rejected_log.allow():
            log.warning("refused an MQTT message on %s: %s", topic[:200], reason)

    def _store(self, messages):
        """Store a batch; a batch the database refuses outright is split to find the message at
        fault (refused, acknowledged); while the database itself fails, retry with back-off."""
        delay = 1.0
        while True:
            try:
                result = self.store.write(messages, self.config.snapshots.keep)
                self._database_back()
                return result
            except DatabaseError as exc:
                if not exc.transient:
                    return self._store_each(messages, exc)
                self._database_failed(exc, len(messages))
            except Exception as exc:  # a bug on some data: find the message, refuse it, go on
                log.exception("storing a batch of %d messages failed", len(messages))
                return self._store_each(messages, exc)
            if self._stop.wait(delay):
                raise _Stopping()
            self.heartbeat = time.monotonic()
            delay = min(delay * 2, RETRY_MAX_S)

    def _store_each(self, messages, exc):
        if len(messages) == 1:
            m = messages[0]
            self._reject(f"{self.config.mqtt.prefix}/{m.device}/{m.camera or ''}/{m.kind}",
                         f"the database refused it: {exc}")
            return WriteResult()
        total = WriteResult()
        for message in messages:
            result = self._store([message])
            total.new_events += result.new_events
            total.duplicates += result.duplicates
            total.changed_devices |= result.changed_devices
            total.snapshots_linked += result.snapshots_linked
        return total

    def _database_failed(self, exc, waiting):
        now = time.monotonic()
        first = self.status.db_error is None
        self.status.db_error = str(exc)
        if first:
            self.status.db_error_since_ms = int(time.time() * 1000)
        if first or now - self._db_error_logged >= DB_ERROR_REPEAT_S:
            self._db_error_logged = now
            log.error("database error: %s; %d messages wait unacknowledged (the broker keeps them) "
                      "and the write is retried", exc, waiting)

    def _database_back(self):
        if self.status.db_error is not None:
            down_s = (time.time() * 1000 - self.status.db_error_since_ms) / 1000
            log.warning("database writes work again after %.0f s", down_s)
            self.status.db_error = self.status.db_error_since_ms = None

    def _acknowledge(self, batch):
        """PUBACK every QoS 1 message of the batch that came on the current connection, in order."""
        with self._ack_lock:
            if not self._connected:
                return
            for item in batch:
                if item.qos > 0 and item.generation == self._generation:
                    self.client.ack(item.mid, item.qos)

    @property
    def idle(self):
        """Nothing waits for the writer."""
        return self.queue.empty() and not self._busy

    def stop(self, timeout=10.0):
        """Store and acknowledge what has arrived (up to `timeout` s), then leave the broker
        (the session stays: the broker keeps queuing for it) and stop the writer."""
        deadline = time.monotonic() + timeout
        while not self.idle and time.monotonic() < deadline and self._writer.is_alive():
            time.sleep(0.05)
        try:
            self.client.disconnect()
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("MQTT disconnect: %s", exc)
        self.client.loop_stop()
        self._stop.set()
        if self._writer.is_alive():
            self._writer.join(timeout)


class _Stopping(Exception):
    """The writer was asked to stop while it waited to retry (the batch stays unacknowledged)."""
