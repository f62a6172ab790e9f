"""The writer's rules without a broker: a batch is acknowledged only after it is stored, only on
the connection it came on, in order; a batch the database refuses is split to find the message
at fault; a payload that breaks the store is refused, never fatal; a database that fails is
retried."""
import json
import threading

import pytest

from edge.service import payloads as daemon_payloads
from monitor.config import MonitorConfig
from monitor.ingest import Incoming, Ingest
from monitor.store import DatabaseError, WriteResult
from tests.monitor.conftest import wait_until


class Client:
    """Records the acknowledgements paho would send."""

    def __init__(self):
        self.acks = []

    def ack(self, mid, qos):
        self.acks.append(mid)


class Store:
    """Stores nothing; fails as told."""

    def __init__(self, fail=None):
        self.fail = fail or (lambda messages: None)
        self.batches = []

    def write(self, messages, keep_snapshots=True):
        self.fail(messages)
        self.batches.append(messages)
        return WriteResult(new_events=[{"device": m.device} for m in messages if m.kind == "event"])


def event_item(mid, generation=1, kind="no_mask"):
    data = daemon_payloads.event(kind, "door", 1, 0.9, (1, 2, 3, 4), "pi-a")
    data["seq"] = mid
    return Incoming("maskdet/pi-a/door/event", json.dumps(data).encode(), 1, mid, generation, 1_790_000_000_000)


def ingest(store):
    i = Ingest(MonitorConfig(), store, client=Client())
    i._connected, i._generation = True, 1
    return i


def test_a_batch_is_acknowledged_in_order_after_it_is_stored():
    i = ingest(Store())
    i._handle([event_item(5), event_item(3), Incoming("maskdet/pi-a/availability", b"??", 1, 9, 1, 0)])
    assert i.client.acks == [5, 3, 9]  # the refused one too: it must not come back forever
    assert i.status.stored_events == 2 and i.status.rejected == 1


def test_messages_of_an_earlier_connection_are_not_acknowledged():
    i = ingest(Store())
    i._handle([event_item(5, generation=0), event_item(6, generation=1)])
    assert i.client.acks == [6]
    i._connected = False
    i._handle([event_item(7)])
    assert i.client.acks == [6]


def test_a_database_that_fails_is_retried_and_the_batch_acknowledged_after(monkeypatch):
    monkeypatch.setattr("monitor.ingest.RETRY_MAX_S", 0.01)
    failures = iter([DatabaseError("database is locked"), DatabaseError("database is locked")])

    def fail(messages):
        error = next(failures, None)
        if error:
            assert i.client.acks == []  # nothing acknowledged while it fails
            raise error

    i = ingest(Store(fail))
    i._stop.wait = lambda delay: False  # no real sleeping
    i._handle([event_item(1)])
    assert i.client.acks == [1] and i.status.db_error is None and len(i.store.batches) == 1


def test_stopping_while_the_database_fails_leaves_the_batch_unacknowledged():
    def fail(messages):
        raise DatabaseError("server closed the connection")

    i = ingest(Store(fail))
    i._stop.set()
    from monitor.ingest import _Stopping

    with pytest.raises(_Stopping):
        i._handle([event_item(1)])
    assert i.client.acks == [] and "server closed" in i.status.db_error


@pytest.mark.parametrize("error", [DatabaseError("value too long", transient=False), KeyError("bug")])
def test_the_message_a_batch_fails_on_is_found_refused_and_the_rest_stored(error):
    def fail(messages):
        if len(messages) > 1 or messages[0].data["seq"] == 2:
            raise error

    i = ingest(Store(fail))
    i._handle([event_item(1), event_item(2), event_item(3)])
    assert [m.data["seq"] for b in i.store.batches for m in b] == [1, 3]
    assert i.client.acks == [1, 2, 3] and i.status.rejected == 1


def test_a_payload_that_breaks_the_parser_is_refused(monkeypatch):
    def explode(*args):
        raise RecursionError("deep")

    monkeypatch.setattr("monitor.ingest.parse_message", explode)
    i = ingest(Store())
    i._handle([event_item(1)])
    assert i.client.acks == [1] and i.status.rejected == 1


def test_the_writer_thread_survives_a_bug_and_goes_on():
    calls = []

    def fail(messages):
        calls.append(1)

    i = ingest(Store(fail))
    i.on_stored = lambda result: (_ for _ in ()).throw(RuntimeError("feed broke"))
    thread = threading.Thread(target=i._write_loop, daemon=True)
    thread.start()
    i.queue.put(event_item(1))
    i.queue.put(event_item(2))
    assert wait_until(lambda: len(i.client.acks) == 2, timeout=10)
    i._stop.set()
    thread.join(5)
    assert i.client.acks == [1, 2]


def test_an_oversized_payload_is_refused_without_being_queued_whole():
    class Message:
        topic, qos, mid, retain = "maskdet/pi-a/door/event", 1, 7, False
        payload = b"x" * (30 * 1024 * 1024)

    i = ingest(Store())
    i._on_message(None, None, Message())
    item = i.queue.get_nowait()
    assert item.payload == b"" and item.size == len(Message.payload)
    i._handle([item])
    assert i.client.acks == [7] and i.status.rejected == 1
    assert "over the limit" in i.status.last_rejected[-1][1]


def test_a_retained_snapshot_replayed_at_subscription_is_not_stored_again():
    store = Store()
    i = ingest(store)
    jpeg = b"\xff\xd8\xff\xe0" + bytes(64)
    i._handle([Incoming("maskdet/pi-a/door/snapshot", jpeg, 1, 4, 1, 1_790_000_000_000, retain=True)])
    assert i.client.acks == [4] and store.batches == [] and i.status.rejected == 0
