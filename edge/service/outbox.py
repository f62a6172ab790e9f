"""The outbox: events wait in SQLite until the broker acknowledges them, and are replayed in order
after a reconnect or a restart. Its size is bounded; what it had to drop is counted.

The daemon that uses it also drives the door's light, so a storage fault never reaches the caller:
no method raises a sqlite3 error, each one degrades instead, and each kind of trouble is logged
once when it starts (then at most one summary per `SUMMARY_INTERVAL_S` while it lasts, and one
line when it ends), never once per event:

- a corrupt file (at open or at any later operation) is moved aside as
  `<name>.corrupt-<UTC time>` (with its -wal / -shm files), kept for inspection, and a new empty
  outbox takes its place; the unsent events it held are lost;
- a full disk drops the new event (counted as `disk_full`); the outbox retries with the next event
  and so recovers on its own once space is freed;
- a file or folder that can no longer be written (read-only, I/O errors) makes the outbox move to
  memory for the rest of the run, with the pending events it can still read;
- more events than `max_events` drop the oldest (counted as `outbox_full`).

`Outbox(":memory:")` is an explicit in-memory outbox: nothing is kept between runs.

Only the constructor raises, a ConfigError, when the outbox's folder cannot be created or written
(see `check_outbox_path`): that is a configuration mistake, found at start.

Sequence numbers (`seq`) order events; subscribers de-duplicate by the event `id`. The counter is
kept in the database. When a corrupt file is replaced at start, its counter is unknown: the new one
starts at max(the old counter if it can still be read, the current Unix time in milliseconds) + 1,
which is above any count a device could have reached, so seq keeps growing at the subscribers.
When a file is replaced during a run, seq simply continues from this run's counter. Events stored
only in memory (after a fall-back) do not advance the counter on disk.
"""
import datetime
import errno
import json
import logging
import os
import sqlite3
import threading
import time
from urllib.parse import quote

from edge.errors import ConfigError

log = logging.getLogger(__name__)

MEMORY = ":memory:"
SUMMARY_INTERVAL_S = 60.0  # at most one summary line per trouble per this many seconds
BUSY_TIMEOUT_S = 1.0  # another process holding the file's lock (a backup, the sqlite3 shell)
RECOVERED_FREE_BYTES = 64 * 1024  # "disk full" ends once a put succeeds with this much free
MAX_REPLACEMENTS = 2  # a third corrupt file in one run: the storage is failing, go to memory
DROP_KINDS = ("outbox_full", "disk_full", "error")
OUTBOX_FULL, DISK_FULL, ERROR = DROP_KINDS

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

# What went wrong with the storage, from a sqlite3 error or an OSError.
CORRUPT, FULL, UNWRITABLE, OTHER = "corrupt", "full", "unwritable", "other"
_PRIMARY_CODES = {11: CORRUPT, 26: CORRUPT,  # SQLITE_CORRUPT, SQLITE_NOTADB
                  13: FULL,  # SQLITE_FULL
                  8: UNWRITABLE, 14: UNWRITABLE,  # SQLITE_READONLY, SQLITE_CANTOPEN
                  10: UNWRITABLE, 3: UNWRITABLE}  # SQLITE_IOERR, SQLITE_PERM
_IOERR = 10
_MESSAGES = (("malformed", CORRUPT), ("not a database", CORRUPT), ("disk is full", FULL),
             ("readonly database", UNWRITABLE), ("unable to open", UNWRITABLE),
             ("disk i/o error", UNWRITABLE))
_ERRNOS = {errno.ENOSPC: FULL, errno.EDQUOT: FULL, errno.EROFS: UNWRITABLE,
           errno.EACCES: UNWRITABLE, errno.EPERM: UNWRITABLE, errno.EIO: UNWRITABLE}


class _CorruptFile(sqlite3.DatabaseError):
    """The integrity check at open found damage."""


def classify(exc):
    """The kind of storage fault behind an exception: CORRUPT, FULL, UNWRITABLE or OTHER."""
    if isinstance(exc, _CorruptFile):
        return CORRUPT
    if isinstance(exc, OSError):
        return _ERRNOS.get(exc.errno, OTHER)
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None and (code & 0xFF) in _PRIMARY_CODES:
        return _PRIMARY_CODES[code & 0xFF]
    text = str(exc).lower()
    return next((kind for words, kind in _MESSAGES if words in text), OTHER)


def _folder(path):
    return os.path.dirname(os.path.abspath(path))


def _free_bytes(folder):
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _why_unwritable(folder):
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError as exc:
        return exc.strerror or str(exc)
    return "permission denied"


def check_outbox_path(path):
    """Check at start that an outbox can be kept at `path`, without opening it: its folder is
    created when missing (as `maskdet run` would, so this may create it) and must be writable, and
    an existing outbox file must be writable. ":memory:" needs nothing. Raises ConfigError with
    one line naming the path and what to do."""
    path = str(path)
    if path == MEMORY:
        return
    folder = _folder(path)
    if os.path.isdir(path):
        raise ConfigError(f"outbox path {path} is a folder: set mqtt.outbox_path to a file in it, "
                          f"e.g. {os.path.join(path, 'outbox.db')}")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ConfigError(f"outbox folder {folder} is a file, not a folder: set mqtt.outbox_path "
                          "to a file in a writable folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"outbox folder {folder} cannot be created ({exc.strerror or exc}): set "
                          "mqtt.outbox_path to a writable folder, or create it for the service "
                          "user") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"outbox folder {folder} is not writable ({_why_unwritable(folder)}): "
                          "set mqtt.outbox_path to a writable folder, or give the service user "
                          "write access to it")
    for name in (path, path + "-wal", path + "-shm"):
        if os.path.exists(name) and not os.access(name, os.W_OK):
            raise ConfigError(f"outbox file {name} is not writable ({_why_unwritable(folder)}): "
                              "give it to the service user (chown), or remove it")


class _Episode:
    """One run of the same trouble, so that it is logged once when it starts, at most once per
    SUMMARY_INTERVAL_S while it lasts, and once when it ends."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.active = False
        self.total = 0  # occurrences in this episode
        self.recent = 0  # occurrences since the last line logged
        self._logged_at = 0.0

    def occur(self, n=1):
        """Count n occurrences; "start" or "summary" when a line is due now, else None."""
        now = self.clock()
        if not self.active:
            self.active, self.total, self.recent, self._logged_at = True, n, 0, now
            return "start"
        self.total += n
        self.recent += n
        if now - self._logged_at >= SUMMARY_INTERVAL_S:
            self._logged_at = now
            return "summary"
        return None

    def reported(self):
        """The occurrences since the last line, and start counting again."""
        recent, self.recent = self.recent, 0
        return recent

    def end(self):
        """The trouble is over: the episode's total, or None when there was no episode."""
        if not self.active:
            return None
        self.active = False
        return self.total


class Outbox:
    """A bounded FIFO of (seq, topic, payload) in SQLite, safe to use from several threads; it
    never raises a storage error (see the module's docstring)."""

    def __init__(self, path, max_events=10000, clock=time.monotonic):
        self.path = str(path)
        self.max_events = max_events
        self._lock = threading.RLock()
        self._db = None
        self._storage = "memory"
        self._last_seq = 0  # the last seq handed out (or stored); 0: unknown yet
        self._depth_seen = 0  # the last depth read, reported while the store cannot be read
        self._acked = set()  # acknowledged, but the delete failed (disk full): hidden from pending
        self._drops = dict.fromkeys(DROP_KINDS, 0)
        self._episodes = {kind: _Episode(clock) for kind in DROP_KINDS}
        self._error = None  # the last unexpected error, for the `error` episode
        self._memory_cause = None  # why the outbox fell back to memory
        self._corrupt_kept = None  # where the last corrupt file was kept
        self._replacements = 0
        self._closed = False
        if self.path == MEMORY:
            self._db = _memory_db()
        else:
            check_outbox_path(self.path)
            self._open_disk()

    # -- opening, replacing, falling back ------------------------------------------------------

    def _connect_disk(self):
        """Open the file as `self._db`, check it, create the tables (or raise, the connection
        left open: a corrupt file is moved aside before it is closed, so that closing does not
        delete its WAL)."""
        self._db = db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                        timeout=BUSY_TIMEOUT_S)
        self._storage = "disk"
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        check = db.execute("PRAGMA quick_check(1)").fetchone()[0]
        if check != "ok":
            raise _CorruptFile(f"database disk image is malformed ({check.strip()})")
        db.executescript(SCHEMA)
        self._last_seq = max(self._last_seq, _stored_seq(db))

    def _open_disk(self):
        try:
            self._connect_disk()
        except (sqlite3.Error, OSError) as exc:
            if classify(exc) == CORRUPT:
                self._replace_corrupt(exc)
            else:
                self._switch_to_memory(exc)

    def _replace_corrupt(self, exc):
        """Keep the corrupt file aside and start a new empty outbox in its place."""
        known_seq = self._last_seq
        self._acked.clear()
        self._replacements += 1
        if self._replacements > MAX_REPLACEMENTS:
            self._switch_to_memory(exc, carry=False, why="the outbox file keeps getting corrupted")
            return
        try:
            kept = _move_aside(self.path)  # before closing, which would fold the WAL in
        except OSError as move_exc:
            self._switch_to_memory(exc, carry=False,
                                   why=f"corrupt and cannot be moved aside: {move_exc.strerror}")
            return
        _close_quietly(self._db)
        self._db = None
        self._last_seq = known_seq or max(_readable_seq(kept), int(time.time() * 1000))
        try:
            self._connect_disk()
            _save_seq(self._db, self._last_seq)
        except (sqlite3.Error, OSError) as new_exc:
            self._switch_to_memory(new_exc, carry=False)
        self._corrupt_kept = kept
        log.error("outbox %s is corrupt (%s): kept as %s for inspection; the unsent events it held "
                  "are lost; a new empty outbox replaces it (seq continues after %d)",
                  self.path, exc, kept or "(nothing to keep)", self._last_seq)

    def _switch_to_memory(self, exc, carry=True, why=None):
        """Go on in memory for the rest of the run, with the pending events still readable."""
        rows, seq = self._readable_rows() if carry else ([], 0)
        _close_quietly(self._db)
        self._db = _memory_db()
        self._storage = "memory"
        self._last_seq = max(self._last_seq, seq)
        rows = rows[-self.max_events:] if self.max_events > 0 else []
        self._db.executemany("INSERT INTO outbox (seq, topic, payload) VALUES (?, ?, ?)", rows)
        self._acked.clear()
        self._memory_cause = why or str(exc)
        log.error("outbox %s cannot be used (%s): events are kept in memory for the rest of this "
                  "run (%d pending carried over) and are lost if maskdet stops before the broker "
                  "has them; %s", self.path, self._memory_cause, len(rows), self._memory_advice())

    def _memory_advice(self):
        folder = _folder(self.path)
        if "full" in self._memory_cause:
            return f"free space on {folder} and restart maskdet"
        return f"check the disk (mount, dmesg), make {folder} writable and restart maskdet"

    def _readable_rows(self):
        """The pending events (not acknowledged) and the seq counter still readable, best effort:
        through the open connection, else through a read-only one."""
        if self._db is not None:
            try:
                return _read_rows(self._db, self._acked)
            except (sqlite3.Error, OSError) as exc:
                log.debug("outbox: the open connection cannot read the pending events: %s", exc)
        if not os.path.exists(self.path):
            return [], 0
        try:
            db = _connect_read_only(self.path)
            try:
                return _read_rows(db, self._acked)
            finally:
                _close_quietly(db)
        except (sqlite3.Error, OSError) as exc:
            log.debug("outbox: cannot read the pending events of %s: %s", self.path, exc)
            return [], 0

    # -- running an operation ------------------------------------------------------------------

    def _attempt(self, work):
        """Run work() on the store (the lock held). A corrupt or unwritable store is dealt with
        and work retried once. Returns (True, result) or (False, FULL or OTHER)."""
        if self._closed:
            self._error = "the outbox is closed"
            return False, OTHER
        for retry in (True, False):
            try:
                return True, work()
            except (sqlite3.Error, OSError) as exc:
                self._rollback()
                kind = self._classify(exc)
                if retry and self._repair(kind, exc):
                    continue
                self._error = exc
                return False, kind if kind == FULL else OTHER
        return False, OTHER  # not reached

    def _classify(self, exc):
        kind = classify(exc)
        code = getattr(exc, "sqlite_errorcode", None)
        if kind == UNWRITABLE and self._storage == "disk" and code is not None \
                and code & 0xFF == _IOERR:  # e.g. the -shm file could not grow
            free = _free_bytes(_folder(self.path))
            if free is not None and free < RECOVERED_FREE_BYTES:
                return FULL
        return kind

    def _repair(self, kind, exc):
        """Make the store usable again after a fault; True when the operation is worth a retry."""
        if self._storage != "disk":
            return False
        if kind == CORRUPT:
            self._replace_corrupt(exc)
            return True
        if kind == UNWRITABLE:
            self._switch_to_memory(exc)
            return True
        return False

    def _rollback(self):
        """Roll back an open transaction, if any: SQLite has already rolled back after some
        errors (a full disk at COMMIT), and a failing rollback must not hide the first error."""
        db = self._db
        try:
            if db is not None and db.in_transaction:
                db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.debug("outbox rollback failed: %s", exc)

    # -- the public operations -----------------------------------------------------------------

    def next_seq(self):
        """Reserve the next per-device sequence number (kept across restarts when on disk)."""
        with self._lock:
            self._last_seq += 1
            value = self._last_seq
            self._attempt(lambda: _save_seq(self._db, value))  # kept in memory if it fails
            return value

    def put(self, seq, topic, payload):
        """Store an event. When full, the oldest events are dropped and counted; when the store
        cannot take it (disk full, an error), this event is dropped and counted."""
        text = json.dumps(payload, separators=(",", ":"))
        with self._lock:
            ok, result = self._attempt(lambda: self._store(seq, topic, text))
            if ok:
                self._after_store(*result)
            else:
                self._drop(DISK_FULL if result == FULL else ERROR, 1)

    def _store(self, seq, topic, text):
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        if self._acked:
            db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in self._acked])
        db.execute("INSERT INTO outbox (seq, topic, payload) VALUES (?, ?, ?)", (seq, topic, text))
        depth = _count(db)
        excess = max(0, depth - self.max_events)
        if excess:
            db.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq "
                       "LIMIT ?)", (excess,))
        db.execute("COMMIT")
        self._acked.clear()
        return excess, depth - excess

    def _after_store(self, excess, depth):
        """After a successful put: count what the bound dropped, end the troubles that are over."""
        self._depth_seen = depth
        if excess:
            self._drop(OUTBOX_FULL, excess)
        else:
            self._end_outbox_full(depth)
        if self._episodes[DISK_FULL].active and self._space_is_back():
            total = self._episodes[DISK_FULL].end()
            log.warning("outbox %s stores events again (disk space is back): %d events were "
                        "dropped while the disk was full", self.path, total)
        total = self._episodes[ERROR].end()
        if total is not None:
            log.warning("outbox %s works again: %d events were dropped while it failed",
                        self.path, total)

    def _space_is_back(self):
        """Hysteresis: a put that squeezed into the last bytes does not end "disk full"."""
        free = _free_bytes(_folder(self.path))
        return self._storage != "disk" or free is None or free >= RECOVERED_FREE_BYTES

    def _end_outbox_full(self, depth):
        low_water = self.max_events - max(1, self.max_events // 10)
        if depth <= low_water:
            total = self._episodes[OUTBOX_FULL].end()
            if total is not None:
                log.warning("outbox no longer full (%d events waiting): %d oldest events were "
                            "dropped while it was", depth, total)

    def _drop(self, kind, n):
        """Count n dropped events of a kind; log when the trouble starts, then summaries."""
        self._drops[kind] += n
        episode = self._episodes[kind]
        due = episode.occur(n)
        if due is None:
            return
        recent = episode.reported()
        if kind == OUTBOX_FULL:
            if due == "start":
                log.warning("outbox full (%d events; is the MQTT broker reachable?): dropping the "
                            "oldest events (%d so far); counts follow at most once a minute",
                            self.max_events, n)
            else:
                log.warning("outbox still full: %d more oldest events dropped (%d since it filled)",
                            recent, episode.total)
        elif kind == DISK_FULL:
            if due == "start":
                log.error("outbox %s: disk full (%s): new events are dropped until space is freed "
                          "on %s; counts follow at most once a minute",
                          self.path, self._error, _folder(self.path))
            else:
                log.error("outbox %s: disk still full: %d more events dropped (%d since it "
                          "filled); free space on %s", self.path, recent, episode.total,
                          _folder(self.path))
        elif due == "start":
            log.error("outbox %s failed (%s): events are dropped while this lasts",
                      self.path, self._error)
        else:
            log.error("outbox %s still failing (%s): %d more events dropped (%d in all)",
                      self.path, self._error, recent, episode.total)

    def pending(self, limit=100):
        """The oldest events not yet acknowledged: [(seq, topic, payload dict)]; [] when the
        store cannot be read."""
        with self._lock:
            ok, rows = self._attempt(lambda: self._db.execute(
                "SELECT seq, topic, payload FROM outbox ORDER BY seq LIMIT ?",
                (limit + len(self._acked),)).fetchall())
            if not ok:
                if rows == OTHER and not self._closed:
                    self._drop(ERROR, 0)  # logged (once), nothing dropped
                return []
            events = []
            for seq, topic, payload in rows:
                if seq in self._acked:
                    continue
                try:
                    events.append((seq, topic, json.loads(payload)))
                except ValueError:
                    self._unreadable(seq)
            return events[:limit]

    def _unreadable(self, seq):
        """A stored payload that is not JSON (damage SQLite did not see): drop it, counted."""
        self._error = f"event {seq} is not readable JSON"
        self._drop(ERROR, 1)
        self.acknowledge(seq)

    def acknowledge(self, seq):
        """The broker has the event: forget it (hidden at once, even when the delete fails)."""
        with self._lock:
            ok, _ = self._attempt(lambda: self._db.execute("DELETE FROM outbox WHERE seq = ?",
                                                           (seq,)))
            if not ok:
                self._acked.add(seq)
                return
            self._acked.discard(seq)
            if self._episodes[OUTBOX_FULL].active:
                self._end_outbox_full(self._count_now())

    def _count_now(self):
        ok, n = self._attempt(lambda: _count(self._db))
        if ok:
            self._depth_seen = max(0, n - len(self._acked))
        return self._depth_seen

    @property
    def depth(self):
        """Events waiting (the last known number when the store cannot be read)."""
        with self._lock:
            return self._count_now()

    @property
    def dropped(self):
        """Events dropped since this outbox was opened, for every reason (the sum of `drops`)."""
        with self._lock:
            return sum(self._drops.values())

    @property
    def drops(self):
        """Events dropped since this outbox was opened, by reason: `outbox_full` (the oldest,
        beyond max_events), `disk_full` (new events the disk had no room for) and `error` (new
        events lost to another storage error)."""
        with self._lock:
            return dict(self._drops)

    @property
    def storage(self):
        """Where events wait: "disk" or "memory" (":memory:", or after the file became unusable)."""
        with self._lock:
            return self._storage

    @property
    def problem(self):
        """None when all is well, else one short sentence: the cause and what to do."""
        with self._lock:
            folder, episodes = _folder(self.path), self._episodes
            if self._memory_cause:
                return (f"outbox cannot be written ({self._memory_cause}): events are kept in "
                        f"memory only and lost at a restart; {self._memory_advice()}")
            if episodes[DISK_FULL].active:
                return (f"disk full: {episodes[DISK_FULL].total} events dropped; "
                        f"free space on {folder}")
            if episodes[ERROR].active:
                return (f"outbox error ({self._error}): {episodes[ERROR].total} events dropped; "
                        "see the log")
            if episodes[OUTBOX_FULL].active:
                return (f"outbox full ({self.max_events} events): {episodes[OUTBOX_FULL].total} "
                        "oldest events dropped; check the connection to the MQTT broker")
            if self._corrupt_kept:
                return (f"outbox file was corrupt and was replaced (kept as {self._corrupt_kept}); "
                        "its unsent events were lost: inspect or delete the kept file")
            return None

    def close(self):
        """Close the database (what it holds is kept on disk); safe to call twice."""
        with self._lock:
            self._closed = True
            _close_quietly(self._db)


def _memory_db():
    db = sqlite3.connect(MEMORY, check_same_thread=False, isolation_level=None)
    db.executescript(SCHEMA)
    return db


def _close_quietly(db):
    if db is None:
        return
    try:
        db.close()
    except sqlite3.Error as exc:
        log.debug("outbox close failed: %s", exc)


def _count(db):
    return db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]


def _stored_seq(db):
    """The highest seq the database knows: its counter or its newest event."""
    row = db.execute("SELECT MAX(value) FROM (SELECT value FROM counters WHERE name = 'seq' "
                     "UNION ALL SELECT MAX(seq) FROM outbox)").fetchone()
    return row[0] or 0


def _connect_read_only(path):
    return sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_S)


def _save_seq(db, value):
    db.execute("INSERT INTO counters (name, value) VALUES ('seq', ?) ON CONFLICT(name) "
               "DO UPDATE SET value = MAX(value, excluded.value)", (value,))


def _read_rows(db, hidden):
    rows = db.execute("SELECT seq, topic, payload FROM outbox ORDER BY seq").fetchall()
    return [row for row in rows if row[0] not in hidden], _stored_seq(db)


def _readable_seq(path):
    """The seq counter of a (corrupt) file if it can still be read, else 0."""
    if not path:
        return 0
    try:
        db = _connect_read_only(path)
        try:
            return int(_stored_seq(db))
        finally:
            _close_quietly(db)
    except (sqlite3.Error, OSError, ValueError, TypeError):
        return 0


def _move_aside(path):
    """Rename a corrupt outbox (and its -wal, -shm) to `<name>.corrupt-<UTC time>`; returns the
    new name, or None when there was no file."""
    if not os.path.exists(path):
        return None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    kept, n = f"{path}.corrupt-{stamp}", 1
    while os.path.exists(kept):
        kept, n = f"{path}.corrupt-{stamp}-{n}", n + 1
    os.rename(path, kept)
    for suffix in ("-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.rename(path + suffix, kept + suffix)
    return kept
