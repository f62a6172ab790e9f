"""Frame sources behind one interface: `open()`, `read() -> BGR frame or None`, `close()`.

OpenCV (a V4L2 device, an RTSP / HTTP URL, a video file, optionally looped and paced in real
time), a folder of images, and picamera2 (imported only when used). A source raises
`SourceError` when it cannot deliver; the camera worker reopens it with back-off.
"""
import contextlib
import logging
import os
import time

import cv2
import numpy as np

from edge.errors import DataError, EndOfStream, SourceError
from edge.inference.images import list_images, read_image

log = logging.getLogger(__name__)


class Pacer:
    """Sleeps so that frames come at most `fps` per second (files and folders in real time)."""

    def __init__(self, fps, enabled):
        self.interval = 1.0 / fps if enabled and fps else 0.0
        self._next = None

    def wait(self):
        """Block until the next frame is due."""
        if not self.interval:
            return
        now = time.monotonic()
        if self._next is None or now - self._next > 1.0:
            self._next = now
        elif self._next > now:
            time.sleep(self._next - now)
        self._next += self.interval


def _device_or_url(url):
    if url.isdigit():
        return int(url)
    return url


class OpenCVSource:
    """A V4L2 device, an RTSP or HTTP stream, or a video file through cv2.VideoCapture."""

    def __init__(self, url, width=None, height=None, fps=None, loop=False, realtime=True):
        self.url = url
        self.width, self.height, self.fps = width, height, fps
        self.is_file = os.path.isfile(url)
        self.loop = loop and self.is_file
        self.pacer = Pacer(fps, realtime and self.is_file)
        self._capture = None

    def open(self):
        """Open the capture; SourceError when it cannot."""
        self._capture = cv2.VideoCapture(_device_or_url(self.url))
        if not self._capture.isOpened():
            raise SourceError(f"cannot open {self.url}: check the device, URL or file")
        if not self.is_file:
            if self.width and self.height:
                self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.fps:
                self._capture.set(cv2.CAP_PROP_FPS, self.fps)
            self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def read(self):
        """The next frame; EndOfStream at the end of a file, SourceError on a dead stream."""
        self.pacer.wait()
        ok, frame = self._capture.read()
        if not ok and self.loop:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
        if not ok:
            if self.is_file:
                raise EndOfStream(f"{self.url}: end of file")
            raise SourceError(f"{self.url}: no frame (device unplugged or stream down)")
        return frame

    def close(self):
        """Release the capture."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class FolderSource:
    """The images of a folder in name order, optionally looped and paced. An unreadable file is
    skipped and named once per open; a whole pass over the folder without one decodable image is
    a SourceError (the camera is reported down and reopened with back-off, which lists the folder
    again), never a busy loop."""

    def __init__(self, path, fps=5.0, loop=False, realtime=True):
        self.path = path
        self.loop = loop
        self.pacer = Pacer(fps, realtime)
        self._files = []
        self._index = 0
        self._misses = 0  # unreadable files in a row
        self._named = set()  # unreadable files already logged since the last open

    def open(self):
        """List the images; SourceError when there are none."""
        if not os.path.isdir(self.path):
            raise SourceError(f"image folder {self.path} does not exist")
        try:
            self._files = list_images(self.path)
        except OSError as exc:
            raise SourceError(f"image folder {self.path} cannot be listed ({exc.strerror or exc}): "
                              "give the service user read access") from exc
        if not self._files:
            raise SourceError(f"image folder {self.path} holds no images")
        self._index, self._misses, self._named = 0, 0, set()

    def read(self):
        """The next decodable image; EndOfStream after the last one (unless looped); SourceError
        when a whole pass over the folder gave none."""
        while True:
            if self._index >= len(self._files):
                if not self.loop:
                    raise EndOfStream(f"{self.path}: no more images")
                self._index = 0
            path = self._files[self._index]
            self._index += 1
            frame = self._decode(path)
            if frame is not None:
                self._misses = 0
                self.pacer.wait()
                return frame
            self._misses += 1
            if self._misses >= len(self._files):
                raise SourceError(f"no readable image in {self.path} ({len(self._files)} files)")

    def _decode(self, path):
        """The image of one file, or None (named in the log once per open) when unreadable."""
        try:
            return read_image(path)
        except DataError as exc:
            if path not in self._named:
                self._named.add(path)
                log.warning("skipping an unreadable image: %s", exc)
            return None

    def close(self):
        """Nothing to release."""


def yuv420_to_bgr(yuv, width, height):
    """A picamera2 YUV420 (I420) lores buffer -> BGR, cropped to width x height."""
    bgr = cv2.cvtColor(np.ascontiguousarray(yuv), cv2.COLOR_YUV2BGR_I420)
    return bgr[:height, :width]


class Picamera2Source:
    """A Raspberry Pi camera through picamera2: a main stream for snapshots and a YUV420 lores
    stream for inference (the Pi 4's ISP gives lores only as YUV420)."""

    def __init__(self, camera_index=0, size=(1280, 720), lores=(640, 360), fps=15.0):
        self.camera_index, self.size, self.lores, self.fps = camera_index, tuple(size), tuple(lores), fps
        self._camera = None

    @staticmethod
    def _import():
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError(
                f"picamera2 cannot be imported ({exc}): on Raspberry Pi OS install python3-picamera2 "
                "with apt and create the venv with --system-site-packages (the libcamera bindings "
                "are not on PyPI)") from exc
        return Picamera2

    def open(self):
        """Configure and start the camera."""
        picamera2_class = self._import()
        try:
            self._camera = picamera2_class(self.camera_index)
            config = self._camera.create_video_configuration(
                main={"size": self.size, "format": "RGB888"},
                lores={"size": self.lores, "format": "YUV420"},
                controls={"FrameRate": self.fps})
            self._camera.configure(config)
            self._camera.start()
        except (RuntimeError, IndexError, OSError) as exc:
            raise SourceError(f"Raspberry Pi camera {self.camera_index} cannot start: {exc}") from exc

    def read(self):
        """The lores frame as BGR."""
        try:
            yuv = self._camera.capture_array("lores")
        except RuntimeError as exc:
            raise SourceError(f"Raspberry Pi camera {self.camera_index}: {exc}") from exc
        return yuv420_to_bgr(yuv, *self.lores)

    def snapshot(self):
        """The main stream frame (picamera2's RGB888 is BGR in memory)."""
        return self._camera.capture_array("main")

    def close(self):
        """Stop and close the camera."""
        if self._camera is not None:
            try:
                with contextlib.suppress(Exception):  # a dead camera may refuse to stop
                    self._camera.stop()
                self._camera.close()
            finally:
                self._camera = None


def create_source(config):
    """The source a SourceConfig describes."""
    if config.type == "opencv":
        return OpenCVSource(config.url, config.width, config.height, config.fps, config.loop, config.realtime)
    if config.type == "folder":
        return FolderSource(config.path, config.fps, config.loop, config.realtime)
    return Picamera2Source(config.camera_index, (config.width, config.height),
                           (config.lores_width, config.lores_height), config.fps)
