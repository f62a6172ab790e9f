"""The monitor's database through SQLAlchemy Core: one schema for SQLite and PostgreSQL, made
and upgraded by the Alembic migrations in `migrations/` at every start.

Times are epoch milliseconds and hours epoch hours (integers), so both databases compare and
group them alike. Writes come from one thread (the ingest writer), a batch per transaction:
events are stored once each (an id already stored, or repeated in the batch, is a duplicate:
delivery is at least once), and the hourly counts of the chart are kept up to date with them, so
the chart never scans the events. Reads (the API) run in other threads; SQLite runs in WAL mode so
that they never wait for the writer.
"""
import collections
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from edge.errors import MaskdetError

log = logging.getLogger(__name__)

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
PEOPLE_TYPES = ("mask", "no_mask")  # an event of these types is one person seen
SNAPSHOT_LINK_MS = 30_000  # a snapshot and an event of one camera this close belong together
SEEN_EVERY_MS = 5_000  # a device's last-seen time is written at most this often
NAME = 64
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()
devices = sa.Table(
    "devices", metadata,
    sa.Column("name", sa.String(NAME), primary_key=True),
    sa.Column("online", sa.Boolean, nullable=True),
    sa.Column("availability_ms", sa.BigInteger, nullable=True),
    sa.Column("first_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("stats", sa.Text, nullable=True),
    sa.Column("stats_ms", sa.BigInteger, nullable=True),
)
cameras = sa.Table(
    "cameras", metadata,
    sa.Column("device", sa.String(NAME), primary_key=True),
    sa.Column("name", sa.String(NAME), primary_key=True),
    sa.Column("state", sa.Text, nullable=True),
    sa.Column("state_ms", sa.BigInteger, nullable=True),
    sa.Column("alert", sa.Boolean, nullable=True),
    sa.Column("alert_since_ms", sa.BigInteger, nullable=True),
    sa.Column("alert_cleared_ms", sa.BigInteger, nullable=True),
)
events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.String(NAME), primary_key=True),
    sa.Column("device", sa.String(NAME), nullable=False),
    sa.Column("camera", sa.String(NAME), nullable=False),
    sa.Column("type", sa.String(NAME), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=True),
    sa.Column("track_id", sa.BigInteger, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("time_ms", sa.BigInteger, nullable=False),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("snapshot_id", sa.BigInteger, nullable=True),
    sa.Index("ix_events_time", "time_ms", "id"),
    sa.Index("ix_events_door_time", "device", "camera", "time_ms"),
    sa.Index("ix_events_type_time", "type", "time_ms"),
)
hourly = sa.Table(
    "hourly", metadata,
    sa.Column("device", sa.String(NAME), primary_key=True),
    sa.Column("camera", sa.String(NAME), primary_key=True),
    sa.Column("hour", sa.BigInteger, primary_key=True),
    sa.Column("people", sa.Integer, nullable=False),
    sa.Column("without_mask", sa.Integer, nullable=False),
    sa.Index("ix_hourly_hour", "hour"),
)
snapshots = sa.Table(
    "snapshots", metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("device", sa.String(NAME), nullable=False),
    sa.Column("camera", sa.String(NAME), nullable=False),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("event_id", sa.String(NAME), nullable=True),
    sa.UniqueConstraint("device", "camera", "sha256", name="uq_snapshots_content"),
    sa.Index("ix_snapshots_door_time", "device", "camera", "received_ms"),
)


class DatabaseError(MaskdetError):
    """The database cannot be reached, or it refused a statement. `transient`: the database
    itself failed (unreachable, locked, out of space ...), so the same write may pass later;
    False: it refused this data, which will never pass."""

    def __init__(self, message, transient=True):
        super().__init__(message)
        self.transient = transient


# What a message itself can cause (a value the database refuses); every other database error is
# the database's (down, read-only after a failover, privileges lost, a table missing): retried
# with back-off, and nothing is acknowledged meanwhile.
BAD_MESSAGE = (sa.exc.IntegrityError, sa.exc.DataError)


def database_error(exc):
    """The DatabaseError of a driver or SQLAlchemy exception."""
    transient = not isinstance(exc, BAD_MESSAGE) or getattr(exc, "connection_invalidated", False)
    return DatabaseError(one_line(exc), transient)


def one_line(exc):
    """A database exception as one short line (drivers' messages span lines and repeat SQL)."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split("\n")[0].split())
    return f"{type(orig).__name__}: {text}"[:300]


def engine_url(url_text, password=None):
    """The SQLAlchemy URL to connect with: psycopg 3 for PostgreSQL, the password added."""
    url = make_url(url_text)
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
        if password:
            url = url.set(password=password)
    return url


def _sqlite_pragmas(dbapi_connection, _record):
    """WAL (readers never wait for the writer), a commit is on disk before the broker hears the
    acknowledgement (synchronous FULL), a busy database is waited for, not an error, and what the
    retention deletes is overwritten where that costs no extra I/O (secure_delete FAST)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA secure_delete=FAST")
    cursor.close()


def make_engine(url_text, password=None):
    """An engine for the configured database (not yet connected)."""
    url = engine_url(url_text, password)
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 10},
                                  pool_size=8, max_overflow=8)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A statement that hangs (a dead server, a lock) fails after 30 s instead of stalling the
    # writer; TCP keepalives notice a server that went away.
    return sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8,
                            connect_args={"connect_timeout": 10, "keepalives": 1,
                                          "keepalives_idle": 30,
                                          "options": "-c statement_timeout=30000"})


def migrate(engine):
    """Bring the schema to the newest migration (Alembic `upgrade head`); returns the revision."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines are about itself
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    with engine.connect() as connection:
        before = MigrationContext.configure(connection).get_current_revision()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    with engine.connect() as connection:
        after = MigrationContext.configure(connection).get_current_revision()
    if after != before:
        log.info("database schema migrated from %s to %s", before or "nothing", after)
    return after


def _insert(conn, table):
    """The dialect's INSERT with ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


@dataclass
class Filters:
    """What the API and the page filter events and counts by (None: any)."""

    device: Optional[str] = None
    camera: Optional[str] = None
    type: Optional[str] = None
    since_ms: Optional[int] = None
    until_ms: Optional[int] = None


@dataclass
class WriteResult:
    """What one batch changed: the new events (rows, for the live feed), the duplicates left
    out, the devices whose summary changed, and events that got a snapshot."""

    new_events: list = field(default_factory=list)
    duplicates: int = 0
    changed_devices: set = field(default_factory=set)
    snapshots_linked: list = field(default_factory=list)  # (event id, snapshot id)


def _event_row(message):
    data = message.data
    return {"id": data["id"], "device": message.device, "camera": message.camera,
            "type": data["type"], "seq": data.get("seq"), "track_id": data.get("track_id"),
            "score": data.get("score"), "time_ms": message.time_ms,
            "received_ms": message.received_ms, "payload": json.dumps(data, separators=(",", ":")),
            "snapshot_id": None}


class Store:
    """The database of one monitor (one writer thread, many readers)."""

    def __init__(self, engine):
        self.engine = engine
        self.dialect = engine.dialect.name
        self._recent_snapshot = {}  # (device, camera) -> received_ms of its last snapshot
        # What the database is known to hold (after a commit), to spare a statement per message:
        self._seen_written = {}  # device -> the last-seen time last written
        self._known_doors = set()  # (device, camera) with a row

    @classmethod
    def open(cls, url_text, password=None):
        """Connect and migrate; DatabaseError when the database cannot be reached or migrated."""
        engine = make_engine(url_text, password)
        try:
            revision = migrate(engine)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            engine.dispose()
            where = engine.url.render_as_string(hide_password=True)
            raise DatabaseError(f"database {where}: {one_line(exc)}") from None
        log.info("database %s at schema revision %s", engine.url.render_as_string(hide_password=True),
                 revision)
        return cls(engine)

    def close(self):
        """Close every pooled connection."""
        self.engine.dispose()

    # --- writes (the writer thread) ------------------------------------------------------

    def write(self, messages, keep_snapshots=True):
        """Store a batch of validated Messages in one transaction; WriteResult. Raises
        DatabaseError (nothing of the batch is stored then)."""
        result = WriteResult()
        known = {}
        try:
            with self.engine.begin() as conn:
                known = self._touch(conn, messages)
                self._write_events(conn, [m for m in messages if m.kind == "event"], result)
                for message in messages:
                    if message.kind == "availability":
                        self._availability(conn, message, result)
                    elif message.kind == "state":
                        self._state(conn, message, result)
                    elif message.kind == "stats":
                        self._stats(conn, message, result)
                    elif message.kind == "snapshot" and keep_snapshots:
                        self._snapshot(conn, message, result)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise database_error(exc) from None
        self._seen_written.update(known.get("seen", {}))
        self._known_doors.update(known.get("doors", ()))
        return result

    def _touch(self, conn, messages):
        """Every device and camera heard from has its row; devices get their last-seen time
        (at most every SEEN_EVERY_MS). Returns what the caches may take once committed."""
        seen, doors = {}, set()
        for m in messages:
            first, last = seen.get(m.device, (m.received_ms, m.received_ms))
            seen[m.device] = (min(first, m.received_ms), max(last, m.received_ms))
            if m.camera is not None and (m.device, m.camera) not in self._known_doors:
                doors.add((m.device, m.camera))
        written = {}
        for device, (first, last) in seen.items():
            if last - self._seen_written.get(device, -SEEN_EVERY_MS) < SEEN_EVERY_MS:
                continue
            stmt = _insert(conn, devices).values(name=device, first_seen_ms=first, last_seen_ms=last)
            conn.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                                    set_={"last_seen_ms": stmt.excluded.last_seen_ms}))
            written[device] = last
        for device, camera in sorted(doors):
            conn.execute(_insert(conn, cameras).values(device=device, name=camera)
                         .on_conflict_do_nothing(index_elements=["device", "name"]))
        return {"seen": written, "doors": doors}

    def _write_events(self, conn, messages, result):
        first = {}
        for m in messages:
            first.setdefault(m.data["id"], m)
        result.duplicates += len(messages) - len(first)
        if not first:
            return
        stored = set(conn.scalars(sa.select(events.c.id).where(events.c.id.in_(list(first)))))
        result.duplicates += len(stored)
        rows = [_event_row(m) for key, m in first.items() if key not in stored]
        if not rows:
            return
        conn.execute(_insert(conn, events).on_conflict_do_nothing(index_elements=["id"]), rows)
        self._count_hours(conn, rows)
        for row in rows:
            if (row["device"], row["camera"]) in self._recent_snapshot:
                self._link_waiting_snapshot(conn, row, result)
        result.new_events.extend(rows)

    def _count_hours(self, conn, rows):
        counts = collections.Counter()
        without = collections.Counter()
        for row in rows:
            if row["type"] in PEOPLE_TYPES:
                key = (row["device"], row["camera"], row["time_ms"] // HOUR_MS)
                counts[key] += 1
                without[key] += row["type"] == "no_mask"
        if not counts:
            return
        stmt = _insert(conn, hourly)
        stmt = stmt.on_conflict_do_update(
            index_elements=["device", "camera", "hour"],
            set_={"people": hourly.c.people + stmt.excluded.people,
                  "without_mask": hourly.c.without_mask + stmt.excluded.without_mask})
        conn.execute(stmt, [{"device": d, "camera": c, "hour": h, "people": n,
                             "without_mask": without[(d, c, h)]} for (d, c, h), n in counts.items()])

    def _availability(self, conn, message, result):
        current = conn.execute(sa.select(devices.c.online).where(devices.c.name == message.device)).scalar()
        if current != message.data:
            conn.execute(devices.update().where(devices.c.name == message.device)
                         .values(online=message.data, availability_ms=message.received_ms))
            result.changed_devices.add(message.device)

    def _state(self, conn, message, result):
        where = (cameras.c.device == message.device, cameras.c.name == message.camera)
        row = conn.execute(sa.select(cameras.c.alert, cameras.c.state_ms).where(*where)).first()
        if row is None:  # pruned by the retention a moment ago
            conn.execute(cameras.insert().values(device=message.device, name=message.camera))
            row = conn.execute(sa.select(cameras.c.alert, cameras.c.state_ms).where(*where)).first()
        if row.state_ms is not None and message.time_ms < row.state_ms:
            return  # an older state than the one stored (a retained copy replayed late)
        alert = bool(message.data["alert"])
        values = {"state": json.dumps(message.data, separators=(",", ":")),
                  "state_ms": message.time_ms, "alert": alert}
        if alert and not row.alert:
            values["alert_since_ms"] = message.time_ms
        elif not alert and row.alert:
            values["alert_cleared_ms"] = message.time_ms
        conn.execute(cameras.update().where(*where).values(**values))
        result.changed_devices.add(message.device)

    def _stats(self, conn, message, result):
        conn.execute(devices.update()
                     .where(devices.c.name == message.device,
                            sa.or_(devices.c.stats_ms.is_(None), devices.c.stats_ms <= message.time_ms))
                     .values(stats=json.dumps(message.data, separators=(",", ":")),
                             stats_ms=message.time_ms))
        result.changed_devices.add(message.device)

    def _snapshot(self, conn, message, result):
        digest = hashlib.sha256(message.data).hexdigest()
        conn.execute(_insert(conn, snapshots)
                     .values(device=message.device, camera=message.camera,
                             received_ms=message.received_ms, sha256=digest, data=message.data)
                     .on_conflict_do_nothing(index_elements=["device", "camera", "sha256"]))
        snap = conn.execute(sa.select(snapshots.c.id, snapshots.c.event_id).where(
            snapshots.c.device == message.device, snapshots.c.camera == message.camera,
            snapshots.c.sha256 == digest)).first()
        self._recent_snapshot[(message.device, message.camera)] = message.received_ms
        if snap.event_id is not None:
            return  # the same picture again (a retained copy after a reconnect)
        event_id = conn.execute(
            sa.select(events.c.id).where(
                events.c.device == message.device, events.c.camera == message.camera,
                events.c.snapshot_id.is_(None),
                events.c.time_ms >= message.time_ms - SNAPSHOT_LINK_MS,
                events.c.received_ms >= message.received_ms - SNAPSHOT_LINK_MS)
            .order_by(events.c.time_ms.desc()).limit(1)).scalar()
        if event_id is not None:
            self._link(conn, event_id, snap.id, result)

    def _link_waiting_snapshot(self, conn, row, result):
        snap_id = conn.execute(
            sa.select(snapshots.c.id).where(
                snapshots.c.device == row["device"], snapshots.c.camera == row["camera"],
                snapshots.c.event_id.is_(None),
                snapshots.c.received_ms >= row["received_ms"] - SNAPSHOT_LINK_MS)
            .order_by(snapshots.c.received_ms.desc()).limit(1)).scalar()
        if snap_id is not None:
            self._link(conn, row["id"], snap_id, result)
            row["snapshot_id"] = snap_id

    @staticmethod
    def _link(conn, event_id, snapshot_id, result):
        conn.execute(events.update().where(events.c.id == event_id).values(snapshot_id=snapshot_id))
        conn.execute(snapshots.update().where(snapshots.c.id == snapshot_id).values(event_id=event_id))
        result.snapshots_linked.append((event_id, snapshot_id))

    # --- reads (the API's threads) -------------------------------------------------------

    def _read(self, work):
        try:
            with self.engine.connect() as conn:
                return work(conn)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise database_error(exc) from None

    def devices(self):
        """(device rows, camera rows, {(device, camera): its last event row}). The last event of
        a camera is one step down its (device, camera, time) index."""
        def work(conn):
            device_rows = [dict(r._mapping) for r in conn.execute(sa.select(devices).order_by(devices.c.name))]
            camera_rows = [dict(r._mapping) for r in conn.execute(
                sa.select(cameras).order_by(cameras.c.device, cameras.c.name))]
            last = {}
            for cam in camera_rows:
                row = conn.execute(sa.select(events).where(
                    events.c.device == cam["device"], events.c.camera == cam["name"])
                    .order_by(events.c.time_ms.desc()).limit(1)).first()
                if row is not None:
                    last[(cam["device"], cam["name"])] = dict(row._mapping)
            return device_rows, camera_rows, last
        return self._read(work)

    @staticmethod
    def _where(filters):
        clauses = []
        if filters.device:
            clauses.append(events.c.device == filters.device)
        if filters.camera:
            clauses.append(events.c.camera == filters.camera)
        if filters.type:
            clauses.append(events.c.type == filters.type)
        if filters.since_ms is not None:
            clauses.append(events.c.time_ms >= filters.since_ms)
        if filters.until_ms is not None:
            clauses.append(events.c.time_ms < filters.until_ms)
        return clauses

    def events(self, filters, limit=50, cursor=None):
        """(event rows newest first, the cursor of the next page or None). `cursor` is
        (time_ms, id) of the last row of the previous page."""
        query = sa.select(events).where(*self._where(filters))
        if cursor is not None:
            query = query.where(sa.tuple_(events.c.time_ms, events.c.id) < sa.tuple_(*cursor))
        query = query.order_by(events.c.time_ms.desc(), events.c.id.desc()).limit(limit + 1)
        rows = self._read(lambda conn: [dict(r._mapping) for r in conn.execute(query)])
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, ((rows[-1]["time_ms"], rows[-1]["id"]) if more and rows else None)

    def iter_events(self, filters, chunk=2000):
        """Every matching event, newest first, a page at a time (for the CSV export)."""
        cursor = None
        while True:
            rows, cursor = self.events(filters, chunk, cursor)
            yield from rows
            if cursor is None:
                return

    def hourly(self, filters):
        """Hourly counts (device, camera, hour, people, without_mask) in the filters' window."""
        query = sa.select(hourly)
        if filters.device:
            query = query.where(hourly.c.device == filters.device)
        if filters.camera:
            query = query.where(hourly.c.camera == filters.camera)
        if filters.since_ms is not None:
            query = query.where(hourly.c.hour >= filters.since_ms // HOUR_MS)
        if filters.until_ms is not None:
            query = query.where(hourly.c.hour < -(-filters.until_ms // HOUR_MS))
        query = query.order_by(hourly.c.hour, hourly.c.device, hourly.c.camera)
        return self._read(lambda conn: [dict(r._mapping) for r in conn.execute(query)])

    def snapshot(self, snapshot_id):
        """The JPEG bytes of a snapshot, or None."""
        query = sa.select(snapshots.c.data).where(snapshots.c.id == snapshot_id)
        return self._read(lambda conn: conn.execute(query).scalar())

    def ping(self):
        """Raise DatabaseError unless the database answers."""
        self._read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())

    # --- retention -----------------------------------------------------------------------

    def prune(self, now_ms, retention_days, snapshot_days, chunk=5000):
        """Delete what is older than the retention (events, hourly counts, snapshots, devices not
        heard from since), a chunk per transaction so that the writer is never held up long.
        Returns the number of rows deleted per table."""
        cut = int(now_ms - retention_days * DAY_MS)
        snap_cut = int(now_ms - snapshot_days * DAY_MS)
        deleted = {}
        try:
            deleted["events"] = self._delete_chunks(
                events, events.c.id, events.c.time_ms < cut, chunk)
            deleted["snapshots"] = self._delete_snapshots(snapshots.c.received_ms < snap_cut, chunk)
            with self.engine.begin() as conn:
                deleted["hourly"] = conn.execute(hourly.delete().where(hourly.c.hour < cut // HOUR_MS)).rowcount
                gone = list(conn.scalars(sa.select(devices.c.name).where(devices.c.last_seen_ms < cut)))
                if gone:
                    conn.execute(cameras.delete().where(cameras.c.device.in_(gone)))
                    conn.execute(devices.delete().where(devices.c.name.in_(gone)))
                deleted["devices"] = len(gone)
            for device in gone:  # heard from again, they get their rows again
                self._seen_written.pop(device, None)
            self._known_doors = {door for door in self._known_doors if door[0] not in gone}
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise database_error(exc) from None
        return deleted

    def _delete_chunks(self, table, key, condition, chunk):
        total = 0
        while True:
            with self.engine.begin() as conn:
                ids = list(conn.scalars(sa.select(key).where(condition).limit(chunk)))
                if ids:
                    conn.execute(table.delete().where(key.in_(ids)))
            total += len(ids)
            if len(ids) < chunk:
                return total

    def _delete_snapshots(self, condition, chunk):
        total = 0
        while True:
            with self.engine.begin() as conn:
                ids = list(conn.scalars(sa.select(snapshots.c.id).where(condition).limit(chunk)))
                if ids:
                    conn.execute(events.update().where(events.c.snapshot_id.in_(ids)).values(snapshot_id=None))
                    conn.execute(snapshots.delete().where(snapshots.c.id.in_(ids)))
            total += len(ids)
            if len(ids) < chunk:
                return total
