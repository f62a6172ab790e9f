"""The database, the same tests on SQLite and on a real PostgreSQL: the migrations make exactly
the tables store.py uses, events are stored once, counts, state, availability, paging, retention."""
import json

import pytest
import sqlalchemy as sa

from edge.service import payloads as daemon_payloads
from monitor import store as store_module
from monitor.config import db_password
from monitor.payloads import parse_message
from monitor.store import HOUR_MS, DatabaseError, Filters, Store

T0 = 1_790_000_000_000 // HOUR_MS * HOUR_MS  # an hour's start, 2026-09


def msg(topic, payload, received_ms):
    if isinstance(payload, dict):
        payload = json.dumps(payload).encode()
    return parse_message(f"maskdet/{topic}", payload, "maskdet", received_ms)


def ev(kind="no_mask", device="pi-a", camera="door", at=T0, event_id=None, seq=1):
    data = daemon_payloads.event(kind, camera, 1, 0.9, (1, 2, 3, 4), device, now=at / 1000,
                                 event_id=event_id)
    data["seq"] = seq
    return msg(f"{device}/{camera}/event", data, at + 50)


def state(alert, device="pi-a", camera="door", at=T0):
    return msg(f"{device}/{camera}/state",
               daemon_payloads.state(alert, 1, 1, 1, 12.0, "cpu", True, "no Edge TPU", now=at / 1000), at + 10)


@pytest.fixture
def store(database_url):
    s = Store.open(database_url, db_password())
    yield s
    s.close()


def test_the_migrations_make_exactly_the_tables_the_store_uses(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                store_module.metadata)
    assert diff == [], diff
    assert store_module.migrate(store.engine) == "0001"  # again: nothing to do


def test_an_event_is_stored_once_whatever_arrives_twice(store):
    first = ev(event_id="a" * 32)
    result = store.write([first, first, ev(event_id="b" * 32, at=T0 + 1000)])
    assert len(result.new_events) == 2 and result.duplicates == 1
    again = store.write([ev(event_id="a" * 32)])  # redelivered later (at least once)
    assert again.new_events == [] and again.duplicates == 1
    rows, _ = store.events(Filters())
    assert [r["id"] for r in rows] == ["b" * 32, "a" * 32]
    hours = store.hourly(Filters())
    assert [(h["people"], h["without_mask"]) for h in hours] == [(2, 2)]  # duplicates not counted


def test_hourly_counts_per_door(store):
    store.write([ev("mask", at=T0), ev("no_mask", at=T0 + 60_000), ev("mask", at=T0 + HOUR_MS + 5),
                 ev("mask", device="pi-b", at=T0)])
    rows = {(r["device"], r["camera"], r["hour"] * HOUR_MS): (r["people"], r["without_mask"])
            for r in store.hourly(Filters())}
    assert rows == {("pi-a", "door", T0): (2, 1), ("pi-a", "door", T0 + HOUR_MS): (1, 0),
                    ("pi-b", "door", T0): (1, 0)}
    assert len(store.hourly(Filters(device="pi-a", since_ms=T0 + HOUR_MS))) == 1


def test_availability_state_alert_and_stats(store):
    on = msg("pi-a/availability", b"online", T0)
    store.write([on])
    store.write([msg("pi-a/availability", b"online", T0 + 5000)])  # a retained copy again
    store.write([state(False, at=T0), state(True, at=T0 + 1000)])
    store.write([state(True, at=T0 + 2000), state(False, at=T0 + 9000)])
    store.write([state(True, at=T0 + 500)])  # older than what is stored: ignored
    stats = daemon_payloads.stats({"detect": {"median": 5, "p90": 6}}, {"door": 0}, 3, 0, 60, now=T0 / 1000)
    store.write([msg("pi-a/stats", stats, T0), ev(at=T0 + 3000)])
    devices, cameras, last = store.devices()
    assert devices[0]["online"] is True and devices[0]["availability_ms"] == T0
    assert json.loads(devices[0]["stats"])["outbox_depth"] == 3
    cam = cameras[0]
    assert cam["alert"] is False and cam["alert_since_ms"] == T0 + 1000 and cam["alert_cleared_ms"] == T0 + 9000
    assert last[("pi-a", "door")]["time_ms"] == T0 + 3000
    store.write([msg("pi-a/availability", b"offline", T0 + 20_000)])
    devices, _, _ = store.devices()
    assert devices[0]["online"] is False and devices[0]["availability_ms"] == T0 + 20_000


def test_filters_and_paging_walk_every_event_once(store):
    batch = [ev("no_mask" if i % 3 == 0 else "mask", device=f"pi-{'ab'[i % 2]}", at=T0 + (i // 2) * 1000,
                event_id=f"{i:08d}") for i in range(45)]
    store.write(batch)
    seen, cursor = [], None
    while True:
        rows, cursor = store.events(Filters(), limit=10, cursor=cursor)
        seen += rows
        if cursor is None:
            break
    assert len(seen) == 45 and len({r["id"] for r in seen}) == 45
    assert [r["time_ms"] for r in seen] == sorted((r["time_ms"] for r in seen), reverse=True)
    no_mask_b = store.events(Filters(device="pi-b", type="no_mask"), limit=100)[0]
    assert {r["id"] for r in no_mask_b} == {f"{i:08d}" for i in range(45) if i % 2 and i % 3 == 0}
    window = store.events(Filters(since_ms=T0 + 5000, until_ms=T0 + 10_000), limit=100)[0]
    assert {r["time_ms"] for r in window} == {T0 + s * 1000 for s in range(5, 10)}
    assert len(list(store.iter_events(Filters(), chunk=7))) == 45


def test_a_snapshot_joins_the_event_of_its_camera_once(store):
    jpeg = b"\xff\xd8\xff\xe0" + b"\1" * 50
    result = store.write([ev(event_id="e" * 32, at=T0)])
    linked = store.write([msg("pi-a/door/snapshot", jpeg, T0 + 2000)])
    assert linked.snapshots_linked and linked.snapshots_linked[0][0] == "e" * 32
    rows, _ = store.events(Filters())
    assert store.snapshot(rows[0]["snapshot_id"]) == jpeg
    again = store.write([msg("pi-a/door/snapshot", jpeg, T0 + 60_000)])  # retained copy: same picture
    assert again.snapshots_linked == [] and result.new_events
    # A snapshot first, its event just after: joined too.
    store.write([msg("pi-a/door/snapshot", jpeg + b"2", T0 + 100_000)])
    late = store.write([ev(event_id="f" * 32, at=T0 + 100_500)])
    assert late.new_events[0]["snapshot_id"] is not None


def test_retention_prunes_old_rows_only(store):
    day = 24 * HOUR_MS
    store.write([ev(at=T0 - 40 * day, event_id="o" * 32), ev(at=T0, event_id="n" * 32),
                 msg("pi-old/availability", b"online", T0 - 40 * day),
                 msg("pi-a/door/snapshot", b"\xff\xd8\xff" + b"x" * 10, T0 - 10 * day)])
    deleted = store.prune(T0, retention_days=30, snapshot_days=7)
    assert deleted["events"] == 1 and deleted["snapshots"] == 1 and deleted["hourly"] == 1
    assert deleted["devices"] == 1
    rows, _ = store.events(Filters())
    assert [r["id"] for r in rows] == ["n" * 32]
    assert [d["name"] for d in store.devices()[0]] == ["pi-a"]


def test_a_database_that_refuses_data_is_a_non_transient_error(postgres, pg_password):
    store = Store.open(postgres.new_database(), db_password())
    bad = ev()
    bad.data["type"] = "x" * 200  # past the column's width (PostgreSQL refuses; SQLite does not check)
    with pytest.raises(DatabaseError) as refused:
        store.write([bad])
    assert refused.value.transient is False
    store.close()


def test_an_unreachable_database_is_a_database_error(tmp_path):
    with pytest.raises(DatabaseError, match="database .*: OperationalError"):
        Store.open(f"sqlite:///{tmp_path}/missing/folder/monitor.db")
    with pytest.raises(DatabaseError, match="OperationalError"):
        Store.open("postgresql://nobody@127.0.0.1:1/none")


def test_sqlite_runs_in_wal_mode(tmp_path):
    s = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    with s.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 2  # FULL
    s.close()
