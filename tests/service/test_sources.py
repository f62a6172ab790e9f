"""Frame sources on real files, the drop-oldest queue and the reopen with back-off."""
import time

import cv2
import numpy as np
import pytest

from edge.service.camera import CameraWorker, LatestFrames
from edge.errors import EndOfStream, SourceError
from edge.service.sources import FolderSource, OpenCVSource, Picamera2Source, yuv420_to_bgr
from tests.conftest import shared_path


def test_a_video_file_gives_its_frames_then_ends():
    source = OpenCVSource(shared_path("data", "videos", "putting_on_mask.mp4"), realtime=False)
    source.open()
    frames = 0
    with pytest.raises(EndOfStream):
        while True:
            frame = source.read()
            frames += 1
    assert frames == 111 and frame.shape == (720, 1280, 3)
    source.close()


def test_a_looped_video_starts_again():
    """Frames keep coming past the end of the file (111 frames), and the first frame after the
    end is the file's first frame again."""
    source = OpenCVSource(shared_path("data", "videos", "putting_on_mask.mp4"), loop=True, realtime=False)
    source.open()
    frames = [source.read() for _ in range(2 * 111 + 8)]
    source.close()
    assert len(frames) > 111 and all(f is not None and f.shape == (720, 1280, 3) for f in frames)
    assert np.array_equal(frames[111], frames[0]) and np.array_equal(frames[222], frames[0])
    assert not np.array_equal(frames[110], frames[0])


def test_real_time_pacing_follows_fps():
    source = OpenCVSource(shared_path("data", "videos", "one_masked.mp4"), fps=50, realtime=True)
    source.open()
    start = time.monotonic()
    for _ in range(11):
        source.read()
    assert time.monotonic() - start >= 0.19  # ten intervals of 20 ms
    source.close()


def test_a_folder_skips_unreadable_images(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((10, 10, 3), np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"broken")
    cv2.imwrite(str(tmp_path / "c.png"), np.full((10, 10, 3), 9, np.uint8))
    source = FolderSource(str(tmp_path), realtime=False)
    source.open()
    assert source.read().max() == 0 and source.read().max() == 9
    with pytest.raises(EndOfStream):
        source.read()


def garbage_folder(tmp_path, n=3):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(n):
        (folder / f"{i}.jpg").write_bytes(b"not a jpeg " * (i + 1))
    return folder


def test_a_looped_folder_without_a_readable_image_is_a_source_error(tmp_path, caplog):
    """One pass over the folder, each unreadable file named once per open, then SourceError;
    never a busy loop."""
    folder = garbage_folder(tmp_path)
    source = FolderSource(str(folder), loop=True, realtime=False)
    for _ in range(2):  # each open names each file once, however often it is read
        caplog.clear()
        source.open()
        for _ in range(3):
            with pytest.raises(SourceError, match=f"no readable image in {folder} \\(3 files\\)"):
                source.read()
        named = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
        assert len(named) == 3 and all(str(folder) in m for m in named), named


def test_a_looped_folder_with_some_unreadable_images_names_each_once(tmp_path, caplog):
    folder = garbage_folder(tmp_path, n=2)
    cv2.imwrite(str(folder / "9.png"), np.full((8, 8, 3), 7, np.uint8))
    source = FolderSource(str(folder), loop=True, realtime=False)
    source.open()
    assert all(source.read().max() == 7 for _ in range(50))
    assert sum("unreadable" in r.getMessage() for r in caplog.records) == 2


class CountingSource:
    """A source that counts its opens."""

    def __init__(self, source):
        self.source, self.opens = source, 0

    def open(self):
        self.opens += 1
        self.source.open()

    def read(self):
        return self.source.read()

    def close(self):
        self.source.close()


def wait_until(condition, timeout=10.0):
    """Poll `condition` until true (True) or the timeout (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_folder_of_garbage_is_a_camera_error_with_backoff_until_an_image_comes(tmp_path, caplog):
    """The camera worker reports the folder down and reopens it with back-off (a bounded number
    of log lines, not thousands a second); an image added to the folder brings frames back."""
    caplog.set_level("INFO")
    folder = garbage_folder(tmp_path)
    source = CountingSource(FolderSource(str(folder), fps=50, loop=True, realtime=True))
    worker = CameraWorker("door", source)  # the daemon's back-off: 0.5 s, doubling
    started = time.monotonic()
    worker.start()
    try:
        assert wait_until(lambda: source.opens >= 3)  # opened at 0, 0.5 and 1.5 s
        elapsed = time.monotonic() - started
        assert worker.error and "no readable image" in worker.error and not worker.ok
        assert worker.frames.get() is None and worker.last_frame_at is None
        assert elapsed >= 1.4, elapsed  # backed off (a spinning reopen would take milliseconds)
        assert len(caplog.records) < 20, [r.getMessage() for r in caplog.records]
        cv2.imwrite(str(folder / "9.png"), np.full((8, 8, 3), 5, np.uint8))
        assert wait_until(lambda: worker.error is None and worker.last_frame_at is not None)
        frame = worker.frames.get()
        assert frame is not None and frame.image.max() == 5 and worker.ok
    finally:
        worker.stop()


def test_missing_device_and_folder_are_source_errors(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        FolderSource(str(tmp_path / "none")).open()
    with pytest.raises(SourceError, match="cannot open"):
        OpenCVSource(str(tmp_path / "video9.mp4")).open()


def test_picamera2_missing_says_how_to_install_it():
    source = Picamera2Source()
    with pytest.raises(SourceError, match="system-site-packages"):
        source.open()


def test_yuv420_lores_is_converted_to_bgr():
    bgr = np.zeros((360, 640, 3), np.uint8)
    bgr[:, :, 2] = 200  # red
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    out = yuv420_to_bgr(yuv, 640, 360)
    assert out.shape == (360, 640, 3) and abs(int(out[..., 2].mean()) - 200) < 6


def test_the_queue_keeps_the_two_newest_and_counts_drops():
    queue = LatestFrames(2)
    for i in range(5):
        queue.put(i)
    assert queue.dropped == 3 and [queue.get(), queue.get(), queue.get()] == [3, 4, None]


class FlakySource:
    """Fails to open twice, then delivers: a camera plugged in late."""

    def __init__(self):
        self.opens = 0

    def open(self):
        self.opens += 1
        if self.opens <= 2:
            raise SourceError("no camera on /dev/video0")

    def read(self):
        time.sleep(0.01)
        return np.zeros((4, 4, 3), np.uint8)

    def close(self):
        pass


def test_a_camera_that_fails_is_reported_and_reopened_with_backoff():
    source = FlakySource()
    worker = CameraWorker("door", source, backoff=(0.05, 0.2))
    worker.start()
    assert worker.wait_open(5.0)
    worker.stop()
    assert source.opens == 3 and worker.error is None and worker.frames.get() is not None


class FakePicamera2:
    """The slice of picamera2.Picamera2's API the adapter uses (libcamera is absent here)."""

    instances = []

    def __init__(self, camera_num=0):
        self.camera_num, self.calls = camera_num, []
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main=None, lores=None, controls=None):
        self.calls.append("create_video_configuration")
        return {"main": main, "lores": lores, "controls": controls}

    def configure(self, config):
        self.config = config

    def start(self):
        self.calls.append("start")

    def capture_array(self, name="main"):
        width, height = self.config[name]["size"]
        if name == "lores":  # I420: a Y plane and quarter-size U and V planes
            return np.full((height * 3 // 2, width), 128, np.uint8)
        return np.zeros((height, width, 3), np.uint8)

    def stop(self):
        self.calls.append("stop")

    def close(self):
        self.calls.append("close")


def test_picamera2_adapter_uses_a_yuv420_lores_stream(monkeypatch):
    monkeypatch.setattr(Picamera2Source, "_import", staticmethod(lambda: FakePicamera2))
    source = Picamera2Source(1, size=(1280, 720), lores=(640, 360), fps=10)
    source.open()
    cam = FakePicamera2.instances[-1]
    assert cam.camera_num == 1
    assert cam.config["lores"] == {"size": (640, 360), "format": "YUV420"}
    assert cam.config["controls"] == {"FrameRate": 10}
    assert source.read().shape == (360, 640, 3)
    assert source.snapshot().shape == (720, 1280, 3)
    source.close()
    assert cam.calls[-2:] == ["stop", "close"]
