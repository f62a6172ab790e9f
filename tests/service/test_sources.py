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
    source = OpenCVSource(shared_path("data", "videos", "putting_on_mask.mp4"), loop=True, realtime=False)
    source.open()
    for _ in range(130):
        source.read()
    source.close()


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
