"""One capture thread per camera into a queue of two that drops the oldest frame and counts the
drop, so a slow model never makes the picture stale. A camera that stops delivering is reported
and reopened with back-off; it never stops the other cameras."""
import collections
import logging
import threading
import time
from dataclasses import dataclass

from edge.errors import EndOfStream, SourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """A captured frame: which camera, the BGR pixels, when (wall clock, for the events it
    causes), its number, and when on the monotonic clock (for durations: the alert delay, fps;
    a Pi without a real-time clock has its wall clock set by NTP after boot)."""

    camera: str
    image: object
    captured_at: float
    number: int
    seen_at: float = 0.0


class LatestFrames:
    """A bounded queue: putting into a full queue drops the oldest frame and counts it."""

    def __init__(self, size=2):
        self._frames = collections.deque(maxlen=size)
        self._lock = threading.Lock()
        self.dropped = 0

    def put(self, frame):
        """Add a frame, dropping the oldest if full."""
        with self._lock:
            if len(self._frames) == self._frames.maxlen:
                self.dropped += 1
            self._frames.append(frame)

    def get(self):
        """The oldest waiting frame, or None."""
        with self._lock:
            return self._frames.popleft() if self._frames else None


class CameraWorker:
    """Reads one source in its own thread; `error` says why it is down, `finished` that a file
    or folder has ended."""

    def __init__(self, name, source, queue_size=2, backoff=(0.5, 30.0), clock=time.time,
                 monotonic=time.monotonic):
        self.name = name
        self.source = source
        self.frames = LatestFrames(queue_size)
        self.backoff_min, self.backoff_max = backoff
        self.clock = clock
        self.monotonic = monotonic
        self.error = None
        self.finished = False
        self.last_frame_at = None
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{name}", daemon=True)

    def start(self):
        """Start capturing."""
        self._thread.start()

    @property
    def started(self):
        """True once `start` was called (a reload keeps a running worker as it is)."""
        return self._thread.ident is not None

    @property
    def opened(self):
        """True once the first frame arrived (or the file or folder ended)."""
        return self._opened.is_set()

    def wait_open(self, timeout):
        """Block until the first frame arrived (True) or the timeout passed (False)."""
        return self._opened.wait(timeout)

    def stop(self, timeout=5.0):
        """Stop capturing and release the source (a worker never started has nothing to stop)."""
        self._stop.set()
        if self.started:
            self._thread.join(timeout)

    @property
    def ok(self):
        """True while the camera delivers."""
        return self.error is None and not self.finished

    def _run(self):
        delay, number = self.backoff_min, 0
        while not self._stop.is_set():
            try:
                self.source.open()
                log.info("camera %s open", self.name)
                while not self._stop.is_set():
                    image = self.source.read()
                    number += 1
                    self.last_frame_at = self.monotonic()
                    self.frames.put(Frame(self.name, image, self.clock(), number, self.last_frame_at))
                    if self.error:
                        log.warning("camera %s delivers again", self.name)
                    self.error, delay = None, self.backoff_min
                    self._opened.set()
            except EndOfStream as exc:
                log.info("camera %s: %s", self.name, exc)
                self.finished = True
                self._opened.set()
                break
            except SourceError as exc:
                self.error = str(exc)
                log.warning("camera %s down: %s; reopening in %.1f s", self.name, exc, delay)
            except Exception as exc:  # a driver bug must not kill the thread silently
                self.error = f"unexpected {type(exc).__name__}: {exc}"
                log.exception("camera %s failed", self.name)
            finally:
                self._close_quietly()
            self._stop.wait(delay)
            delay = min(delay * 2, self.backoff_max)

    def _close_quietly(self):
        try:
            self.source.close()
        except Exception:  # closing a dead device may raise; nothing left to do
            log.debug("closing camera %s failed", self.name, exc_info=True)
