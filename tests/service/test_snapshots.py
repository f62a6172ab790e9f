"""Event snapshots without a broker: what is made, published and kept, the bounds on count and
age, a queue that drops instead of blocking, and disk faults that never stop publishing."""
import logging
import os
import time

import cv2
import numpy as np
import pytest

from edge.config.schema import PrivacyConfig, SnapshotConfig
from edge.inference.annotate import jpeg_comment
from edge.service import snapshots as snapshots_module
from edge.service.snapshots import Snapshots, file_name

BOX = (200, 100, 280, 200)


def frame(seed=3):
    return np.random.default_rng(seed).integers(0, 256, (360, 640, 3), dtype=np.uint8)


class Published:
    def __init__(self):
        self.items = []

    def __call__(self, camera, jpeg):
        self.items.append((camera, jpeg))


def taker(tmp_path, publish=None, blur=True, **settings):
    config = SnapshotConfig(**dict({"enabled": True, "folder": str(tmp_path / "snaps")}, **settings))
    return Snapshots(config, PrivacyConfig(blur_faces=blur), publish or Published(),
                     lambda camera: f"maskdet/pi/{camera}/snapshot")


def decode(jpeg):
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def test_a_face_snapshot_is_the_face_with_its_margin_blurred_and_named_by_the_event(tmp_path):
    published = Published()
    snaps = taker(tmp_path, published, keep=True).start()
    ref = snaps.request("a" * 32, "door", frame(), BOX, "no_mask", 0.93, 1_700_000_000.0)
    assert snaps.wait_idle(10)
    snaps.stop()
    assert ref == {"id": "a" * 32, "topic": "maskdet/pi/door/snapshot",
                   "path": str(tmp_path / "snaps" / file_name("a" * 32, "door", 1_700_000_000.0))}
    camera, jpeg = published.items[0]
    assert camera == "door" and decode(jpeg).shape == (200, 160, 3)  # 80x100 box, margin 0.5
    assert "a" * 32 in jpeg_comment(jpeg) and "No mask 93.0%" in jpeg_comment(jpeg)
    with open(ref["path"], "rb") as handle:
        assert handle.read() == jpeg
    assert snaps.status() == {"made": 1, "published": 1, "kept": 1, "dropped": 0, "failed": 0,
                              "problem": None}
    assert snaps.file_of("a" * 32) == ref["path"] and snaps.file_of("b" * 32) is None


def test_blurring_follows_the_privacy_setting(tmp_path):
    shots = {}
    for blur in (True, False):
        published = Published()
        snaps = taker(tmp_path, published, blur=blur).start()
        snaps.request("c" * 32, "door", frame(), BOX, "mask", 0.9, time.time())
        assert snaps.wait_idle(10)
        snaps.stop()
        shots[blur] = decode(published.items[0][1]).astype(int)
    face = (slice(60, 140), slice(50, 110))  # the box inside the crop
    flat = np.abs(np.diff(shots[True][face], axis=1)).mean()
    sharp = np.abs(np.diff(shots[False][face], axis=1)).mean()
    assert flat < sharp / 4


def test_a_frame_snapshot_shows_the_whole_frame_shrunk(tmp_path):
    published = Published()
    snaps = taker(tmp_path, published, crop="frame", max_width=320).start()
    snaps.request("d" * 32, "door", frame(), BOX, "no_mask", 0.9, time.time())
    assert snaps.wait_idle(10)
    snaps.stop()
    assert decode(published.items[0][1]).shape == (180, 320, 3)


@pytest.mark.parametrize("crop", ["frame", "face"])
def test_a_snapshot_of_a_mask_below_the_nose_says_so(tmp_path, crop):
    """The decision's kind of no mask reaches the snapshot's comment (and, framed, its caption)."""
    published = Published()
    snaps = taker(tmp_path, published, crop=crop).start()
    snaps.request("f" * 32, "door", frame(), BOX, "no_mask", 0.91, time.time(),
                  reason="mask_below_nose")
    assert snaps.wait_idle(10)
    snaps.stop()
    assert snaps.status()["failed"] == 0
    assert "Mask below nose 91.0%" in jpeg_comment(published.items[0][1])


def test_kept_files_are_bounded_by_count_and_age(tmp_path):
    folder = tmp_path / "snaps"
    folder.mkdir()
    old = folder / file_name("e" * 32, "door", 1_000_000_000.0)
    old.write_bytes(b"old")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    stray = folder / "notes.txt"
    stray.write_text("not a snapshot: left alone")
    snaps = taker(tmp_path, keep=True, max_files=3, max_age_h=1.0).start()
    ids = [f"{i:032x}" for i in range(6)]
    for i, snapshot_id in enumerate(ids):
        snaps.request(snapshot_id, "door", frame(i), BOX, "mask", 0.9, 1_800_000_000.0 + i)
        assert snaps.wait_idle(10)
    snaps.stop()
    names = sorted(os.listdir(folder))
    assert names == sorted([file_name(i, "door", 1_800_000_000.0 + n) for n, i in
                            enumerate(ids)][-3:] + ["notes.txt"])
    assert snaps.status()["kept"] == 3 and not old.exists()


def test_unmasked_only_and_off(tmp_path):
    snaps = taker(tmp_path, unmasked_only=True)
    assert snaps.wants("no_mask") and not snaps.wants("mask")
    assert not Snapshots(SnapshotConfig(), PrivacyConfig()).wants("no_mask")


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    snaps = taker(tmp_path)  # not started: nothing takes from the queue
    refs = [snaps.request(f"{i:032x}", "door", frame(), BOX, "mask", 0.9, time.time())
            for i in range(snapshots_module.QUEUE_SIZE + 3)]
    assert refs[:snapshots_module.QUEUE_SIZE] == [r for r in refs if r is not None]
    assert refs[-3:] == [None] * 3 and snaps.status()["dropped"] == 3


def test_a_folder_that_cannot_be_written_is_logged_once_and_snapshots_are_still_published(
        tmp_path, caplog):
    (tmp_path / "snaps").write_text("a file where the folder should be")
    published = Published()
    snaps = taker(tmp_path, published, keep=True).start()
    with caplog.at_level(logging.ERROR):
        for i in range(3):
            snaps.request(f"{i:032x}", "door", frame(), BOX, "mask", 0.9, time.time())
            assert snaps.wait_idle(10)
    assert len(published.items) == 3
    status = snaps.status()
    assert status["failed"] == 3 and "cannot be kept" in status["problem"]
    assert caplog.text.count("cannot be kept") == 1
    (tmp_path / "snaps").unlink()  # fixed: it works again, and says so
    with caplog.at_level(logging.WARNING):
        snaps.request("f" * 32, "door", frame(), BOX, "mask", 0.9, time.time())
        assert snaps.wait_idle(10)
    snaps.stop()
    assert snaps.status()["problem"] is None and "kept in" in caplog.text
    kept = os.listdir(tmp_path / "snaps")
    assert len(kept) == 1 and kept[0].endswith("f" * 32 + ".jpg")


def test_a_failing_publish_or_an_odd_frame_never_stops_the_thread(tmp_path):
    calls = []

    def publish(camera, jpeg):
        calls.append(camera)
        if len(calls) == 1:
            raise RuntimeError("broker hiccup")

    snaps = taker(tmp_path, publish).start()
    snaps.request("1" * 32, "door", frame(), BOX, "mask", 0.9, time.time())
    snaps.request("2" * 32, "door", np.zeros((0, 0, 3), np.uint8), BOX, "mask", 0.9, time.time())
    snaps.request("3" * 32, "door", frame(), BOX, "mask", 0.9, time.time())
    assert snaps.wait_idle(10)
    snaps.stop()
    assert calls == ["door", "door"] and snaps.status()["failed"] == 2


@pytest.mark.parametrize("crop", ["face", "frame"])
def test_a_box_across_the_edge(tmp_path, crop):
    published = Published()
    snaps = taker(tmp_path, published, crop=crop).start()
    snaps.request("9" * 32, "door", frame(), (600, 300, 700, 420), "mask", 0.9, time.time())
    assert snaps.wait_idle(10)
    snaps.stop()
    assert decode(published.items[0][1]) is not None


def test_a_frame_snapshot_blurs_every_face_and_draws_the_persons_box(tmp_path):
    other = (420, 120, 500, 220)  # a second person in the same frame
    shots = {}
    for blur in (True, False):
        published = Published()
        snaps = taker(tmp_path, published, blur=blur, crop="frame", max_width=640).start()
        snaps.request("e" * 32, "door", frame(), BOX, "no_mask", 0.9, time.time(), faces=[BOX, other])
        assert snaps.wait_idle(10)
        snaps.stop()
        shots[blur] = decode(published.items[0][1]).astype(int)
    inside = (slice(other[1] + 10, other[3] - 10), slice(other[0] + 10, other[2] - 10))
    flat = np.abs(np.diff(shots[True][inside], axis=1)).mean()
    sharp = np.abs(np.diff(shots[False][inside], axis=1)).mean()
    assert flat < sharp / 4  # the other person is pixelated too
    original = frame().astype(int)
    edge_row = shots[False][BOX[1], BOX[0] + 5:BOX[2] - 5]
    assert np.abs(edge_row - original[BOX[1], BOX[0] + 5:BOX[2] - 5]).mean() > 40  # the box is drawn
