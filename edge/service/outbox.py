"""The on-disk outbox: events wait in SQLite until the broker acknowledges them, and are replayed
in order after a reconnect or a restart. Its size is bounded; what it had to drop is counted."""
import json
import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Outbox:
    """A bounded FIFO of (seq, topic, payload) in SQLite, safe to use from several threads."""

    def __init__(self, path, max_events=10000):
        self.path = str(path)
        self.max_events = max_events
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def _counter(self, name):
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    def _set_counter(self, name, value):
        self._db.execute("INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) "
                         "DO UPDATE SET value = excluded.value", (name, value))

    def next_seq(self):
        """Reserve the next per-device sequence number (kept across restarts)."""
        with self._lock:
            value = self._counter("seq") + 1
            self._set_counter("seq", value)
            return value

    def put(self, seq, topic, payload):
        """Store an event; when full, the oldest events are dropped and counted."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO outbox (seq, topic, payload) VALUES (?, ?, ?)",
                                 (seq, topic, json.dumps(payload, separators=(",", ":"))))
                excess = self._depth() - self.max_events
                if excess > 0:
                    self._db.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox "
                                     "ORDER BY seq LIMIT ?)", (excess,))
                    self._set_counter("dropped", self._counter("dropped") + excess)
                    log.warning("outbox full (%d events): dropped the %d oldest", self.max_events, excess)
                self._db.execute("COMMIT")
            except Exception:
                self._db.execute("ROLLBACK")
                raise

    def pending(self, limit=100):
        """The oldest events not yet acknowledged: [(seq, topic, payload dict)]."""
        with self._lock:
            rows = self._db.execute("SELECT seq, topic, payload FROM outbox ORDER BY seq LIMIT ?",
                                    (limit,)).fetchall()
        return [(seq, topic, json.loads(payload)) for seq, topic, payload in rows]

    def acknowledge(self, seq):
        """The broker has the event: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def _depth(self):
        return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    @property
    def depth(self):
        """Events waiting."""
        with self._lock:
            return self._depth()

    @property
    def dropped(self):
        """Events dropped because the outbox was full, since it was created."""
        with self._lock:
            return self._counter("dropped")

    def close(self):
        """Close the database."""
        with self._lock:
            self._db.close()
