"""The outbox under real storage faults: a full disk (a small tmpfs), corrupt files, a folder that
is read-only at start (a read-only tmpfs), a filesystem that the kernel turns read-only while the
outbox is open (ext4 on a loop device). Nothing of SQLite is mocked. Tests that need `mount`
(root) skip with the reason when it is refused; CI runs as root, so they run there."""
import glob
import logging
import os
import shutil
import subprocess
import time

import pytest

from edge.errors import ConfigError
from edge.service.outbox import Outbox, check_outbox_path

LOGGER = "edge.service.outbox"
TOPIC = "maskdet/pi/door/event"


def put(box, n=0):
    """What the daemon does for one event: number it, store it; returns its seq."""
    seq = box.next_seq()
    box.put(seq, TOPIC, {"seq": seq, "n": n})
    return seq


def seqs(box, limit=1000):
    return [seq for seq, _, _ in box.pending(limit)]


def records(caplog, level, words=""):
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level
            and words in r.getMessage()]


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def unmount(folder):
    if run("umount", str(folder)).returncode:
        run("umount", "-l", str(folder))


@pytest.fixture
def tmpfs(tmp_path):
    """mount(name, size, options): a fresh tmpfs under tmp_path, unmounted after the test."""
    mounted = []

    def mount(name, size="256k", options=""):
        folder = tmp_path / name
        folder.mkdir()
        options = ",".join(o for o in (f"size={size}", options) if o)
        done = run("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder))
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root, as in CI")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        unmount(folder)


@pytest.fixture
def ext4(tmp_path):
    """(folder, go_read_only): a small ext4 on a loop device mounted with errors=remount-ro, and
    a function that makes the kernel turn it read-only while files on it are open, as it does when
    an SD card fails. (`mount -o remount,ro` refuses while a file is open for writing, so a tmpfs
    cannot become read-only under an open outbox.)"""
    if not shutil.which("mkfs.ext4"):
        pytest.skip("needs mkfs.ext4 (e2fsprogs)")
    image, folder = tmp_path / "ext4.img", tmp_path / "ext4"
    folder.mkdir()
    with open(image, "wb") as f:
        f.truncate(8 * 1024 * 1024)
    made = run("mkfs.ext4", "-q", "-F", str(image))
    if made.returncode:
        pytest.skip(f"mkfs.ext4 failed: {made.stderr.strip()}")
    done = run("mount", "-o", "loop,errors=remount-ro", str(image), str(folder))
    if done.returncode:
        pytest.skip(f"cannot mount an ext4 image on a loop device ({done.stderr.strip()}): needs "
                    "root and loop devices, as in CI")
    device = os.path.basename(run("findmnt", "-no", "SOURCE", str(folder)).stdout.strip())
    trigger = f"/sys/fs/ext4/{device}/trigger_fs_error"

    def go_read_only():
        with open(trigger, "w") as f:
            f.write("maskdet test: make the filesystem read-only\n")
        with pytest.raises(OSError):  # the kernel now refuses writes
            (folder / "probe").write_text("x")

    try:
        if not os.path.exists(trigger):
            pytest.skip(f"this kernel has no {trigger} to make an ext4 read-only")
        yield folder, go_read_only
    finally:
        unmount(folder)


def fill(folder):
    """Fill a filesystem to the last byte; returns the filler file's path."""
    path = os.path.join(folder, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (b"x" * 4096, b"x"):
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    assert exc.errno == 28  # ENOSPC
                    break
    finally:
        os.close(fd)
    return path


def damage(path, how):
    """Damage an outbox file as failing storage does. SQLite trusts its page cache while the
    wal-index (-shm) says nothing changed, so damage to the file alone shows only at the next open
    (the at-start tests); damage to the storage hits the -shm too, as here.
    how: "pages" (all but the first page: "database disk image is malformed") or "whole" (the file
    and its WAL: "file is not a database")."""
    start = 4096 if how == "pages" else 0
    names = [path] if how == "pages" else [path, path + "-wal"]
    for name in filter(os.path.exists, names):
        size = os.path.getsize(name)
        if size > start:
            with open(name, "r+b") as f:
                f.seek(start)
                f.write(os.urandom(size - start))
    if os.path.exists(path + "-shm"):
        with open(path + "-shm", "r+b") as f:
            f.write(bytes(os.path.getsize(path + "-shm")))


def kept_copies(path):
    return sorted(p for p in glob.glob(f"{path}.corrupt-*") if not p.endswith(("-wal", "-shm")))


# -- :memory: and the folder ---------------------------------------------------------------------

def test_a_memory_outbox_keeps_nothing_between_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    box = Outbox(":memory:", max_events=5)
    assert box.storage == "memory" and box.problem is None
    assert [put(box, i) for i in range(7)] == list(range(1, 8))
    assert seqs(box) == [3, 4, 5, 6, 7] and box.drops["outbox_full"] == 2
    box.close()
    again = Outbox(":memory:")
    assert again.pending() == [] and again.depth == 0 and again.next_seq() == 1
    assert os.listdir(tmp_path) == []  # no file named ":memory:" or anything else


def test_a_missing_folder_is_created_and_the_check_opens_nothing(tmp_path):
    path = tmp_path / "var" / "lib" / "maskdet" / "outbox.db"
    check_outbox_path(path)
    assert path.parent.is_dir() and not path.exists()
    box = Outbox(path)
    put(box)
    box.close()
    assert path.exists() and box.storage == "disk"


def test_a_folder_as_the_outbox_path_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=f"outbox path {tmp_path} is a folder"):
        Outbox(tmp_path)


def test_a_read_only_folder_at_start_is_a_config_error_naming_it(tmpfs):
    ro = tmpfs("ro", size="64k", options="ro")
    for path, folder, words in [(ro / "outbox.db", ro, "is not writable (read-only file system)"),
                                (ro / "sub" / "outbox.db", ro / "sub",
                                 "cannot be created (Read-only file system)")]:
        for call in (Outbox, check_outbox_path):
            with pytest.raises(ConfigError) as err:
                call(path)
            message = str(err.value)
            assert f"outbox folder {folder} {words}" in message and "mqtt.outbox_path" in message
            assert "\n" not in message and err.value.exit_code == 78


# -- corrupt files -------------------------------------------------------------------------------

def test_a_garbage_file_at_start_is_kept_aside_and_a_new_outbox_works(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = tmp_path / "outbox.db"
    garbage = b"this is not an SQLite database. " * 300
    path.write_bytes(garbage)
    before_ms = int(time.time() * 1000)
    box = Outbox(path)
    kept = kept_copies(path)
    assert len(kept) == 1 and open(kept[0], "rb").read() == garbage
    assert box.storage == "disk" and kept[0] in box.problem
    (error,) = records(caplog, logging.ERROR)
    assert kept[0] in error.getMessage() and "lost" in error.getMessage()
    assert "file is not a database" in error.getMessage()
    seq = put(box)
    assert seq > before_ms  # the old counter is unknown: seq starts above any count reached
    box.close()
    again = Outbox(path)
    assert seqs(again) == [seq] and again.next_seq() == seq + 1 and again.problem is None


def test_a_malformed_file_at_start_is_kept_aside_and_seq_keeps_growing(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = str(tmp_path / "outbox.db")
    box = Outbox(path)
    for i in range(30):
        put(box, i)
    box.close()  # the WAL is checkpointed into the file
    damage(path, "pages")
    box = Outbox(path)
    assert len(kept_copies(path)) == 1 and box.depth == 0
    (error,) = records(caplog, logging.ERROR)
    assert "malformed" in error.getMessage()
    assert put(box) > 30


@pytest.mark.parametrize("how", ["pages", "whole"])
@pytest.mark.parametrize("operation", ["next_seq", "put", "pending", "acknowledge", "depth"])
def test_a_file_corrupted_while_open_is_replaced_at_the_next_operation(tmp_path, caplog,
                                                                       operation, how):
    path = str(tmp_path / "outbox.db")
    box = Outbox(path)
    for i in range(3):
        put(box, i)
    box.close()
    box = Outbox(path)  # the events are in the file now, as after a restart
    seq = box.next_seq() if operation == "put" else None
    caplog.set_level(logging.INFO, logger=LOGGER)
    damage(path, how)

    result = {"next_seq": box.next_seq, "put": lambda: box.put(seq, TOPIC, {"seq": seq}),
              "pending": box.pending, "acknowledge": lambda: box.acknowledge(2),
              "depth": lambda: box.depth}[operation]()

    kept = kept_copies(path)
    assert len(kept) == 1 and os.path.exists(kept[0] + "-wal")  # kept with its WAL
    assert box.storage == "disk" and kept[0] in box.problem
    (error,) = records(caplog, logging.ERROR)
    assert kept[0] in error.getMessage() and "lost" in error.getMessage()
    assert result == {"next_seq": 4, "put": None, "pending": [], "acknowledge": None,
                      "depth": 0}[operation]
    assert seqs(box) == ([4] if operation == "put" else [])  # what the file held is lost
    later = put(box)
    assert later == 5 if operation in ("next_seq", "put") else later == 4  # seq continues
    box.close()
    again = Outbox(path)  # the new file is a sound outbox
    assert seqs(again)[-1] == later and len(kept_copies(path)) == 1


def test_storage_that_keeps_corrupting_files_sends_the_outbox_to_memory(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = str(tmp_path / "outbox.db")
    box = Outbox(path)
    done = [put(box)]
    for _ in range(3):
        damage(path, "whole")
        done.append(put(box))
    assert done == [1, 2, 3, 4] and box.storage == "memory" and seqs(box) == [4]
    assert len(kept_copies(path)) == 2  # the first two replaced, the third gave up on the disk
    assert "keeps getting corrupted" in box.problem
    assert len(records(caplog, logging.ERROR)) == 3


# -- a full disk ---------------------------------------------------------------------------------

def test_a_full_disk_drops_new_events_counts_them_and_recovers(tmpfs, caplog):
    now = [1000.0]
    caplog.set_level(logging.INFO, logger=LOGGER)
    disk = tmpfs("disk", size="256k")
    path = str(disk / "outbox.db")
    box = Outbox(path, clock=lambda: now[0])
    stored = [put(box, i) for i in range(3)]
    filler = fill(disk)

    tried = [put(box, i) for i in range(40)]  # nothing escapes

    drops = box.drops
    assert drops["disk_full"] >= 35 and drops["outbox_full"] == drops["error"] == 0
    assert box.dropped == drops["disk_full"] and box.depth == 43 - drops["disk_full"]
    assert box.storage == "disk"
    assert box.problem == f"disk full: {drops['disk_full']} events dropped; free space on {disk}"
    (error,) = records(caplog, logging.ERROR)  # once, not once per event
    assert "database or disk is full" in error.getMessage()
    assert not [r for r in caplog.records if "cannot rollback" in r.getMessage()]

    box.acknowledge(stored[0])  # the delete may fail on a full disk: it is hidden all the same
    assert stored[0] not in seqs(box)
    now[0] += 61
    put(box)
    (summary,) = records(caplog, logging.ERROR, "still full")  # the first line counted one
    assert f"{drops['disk_full']} more events dropped ({drops['disk_full'] + 1} since it filled)" \
        in summary.getMessage()

    os.remove(filler)
    seq = put(box)
    assert seqs(box)[-1] == seq and box.problem is None
    assert box.drops["disk_full"] == drops["disk_full"] + 1
    (back,) = records(caplog, logging.WARNING, "stores events again")
    assert f"{drops['disk_full'] + 1} events were dropped" in back.getMessage()
    box.close()
    again = Outbox(path)
    assert seqs(again)[0] == stored[1] and seqs(again)[-1] == seq
    assert set(seqs(again)) <= set(stored + tried + [seq])


# -- read-only at runtime ------------------------------------------------------------------------

def test_a_filesystem_turning_read_only_moves_the_outbox_to_memory_with_its_events(ext4, caplog):
    folder, go_read_only = ext4
    box = Outbox(folder / "outbox.db")
    stored = [put(box, i) for i in range(4)]
    box.acknowledge(stored[0])
    caplog.set_level(logging.INFO, logger=LOGGER)
    go_read_only()

    seq = put(box)

    assert box.storage == "memory"
    assert seqs(box) == stored[1:] + [seq]  # carried over, the new one stored, in order
    assert box.dropped == 0
    assert "memory" in box.problem and str(folder) in box.problem
    (error,) = records(caplog, logging.ERROR)
    assert "3 pending carried over" in error.getMessage()
    more = [put(box, i) for i in range(5)]
    assert more == list(range(seq + 1, seq + 6))
    for s, _, payload in box.pending():  # the sender goes on: send, acknowledge
        assert payload["seq"] == s
        box.acknowledge(s)
    assert box.depth == 0 and box.pending() == []
    assert len(records(caplog, logging.ERROR)) == 1


# -- the bound, and errors of any other kind -----------------------------------------------------

def test_a_full_outbox_is_logged_once_then_summarised_then_when_it_ends(tmp_path, caplog):
    now = [1000.0]
    caplog.set_level(logging.INFO, logger=LOGGER)
    box = Outbox(tmp_path / "outbox.db", max_events=10, clock=lambda: now[0])
    for i in range(50):
        put(box, i)
    assert len(records(caplog, logging.WARNING)) == 1
    assert box.drops == {"outbox_full": 40, "disk_full": 0, "error": 0} and box.dropped == 40
    assert box.problem.startswith("outbox full (10 events): 40 oldest events dropped")

    now[0] += 30
    put(box)
    assert len(records(caplog, logging.WARNING)) == 1  # no summary within the minute
    now[0] += 31
    put(box)
    (summary,) = records(caplog, logging.WARNING, "still full")
    assert "41 more oldest events dropped (42 since it filled)" in summary.getMessage()

    box.acknowledge(seqs(box)[0])  # room again: below the low-water mark
    (ended,) = records(caplog, logging.WARNING, "no longer full")
    assert "42 oldest events were dropped" in ended.getMessage()
    assert box.problem is None and box.dropped == 42


def test_another_sqlite_error_drops_the_event_counted_and_logged_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    box = Outbox(tmp_path / "outbox.db")
    first = put(box)
    for _ in range(3):
        box.put(first, TOPIC, {"seq": first})  # the same seq again: a constraint error
    assert box.drops == {"outbox_full": 0, "disk_full": 0, "error": 3} and seqs(box) == [first]
    (error,) = records(caplog, logging.ERROR)
    assert "UNIQUE constraint failed" in error.getMessage()
    assert box.problem.startswith("outbox error (UNIQUE constraint failed")
    later = put(box)  # a good event ends the trouble
    assert seqs(box) == [first, later] and box.problem is None
    (ended,) = records(caplog, logging.WARNING, "works again")
    assert "3 events were dropped" in ended.getMessage()


def test_no_operation_raises_even_on_a_closed_outbox(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    box = Outbox(tmp_path / "outbox.db")
    first = put(box)
    box.close()
    box.put(box.next_seq(), TOPIC, {"n": 1})
    box.put(box.next_seq(), TOPIC, {"n": 2})
    assert box.pending() == [] and box.depth == 1
    box.acknowledge(first)
    box.close()
    assert box.drops["error"] == 2 and "2 events dropped" in box.problem
    assert len(records(caplog, logging.ERROR)) == 1
