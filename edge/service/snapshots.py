"""Event snapshots (the config's `snapshots` section, off by default): a JPEG of each decided
person, the face with a margin or the whole frame, faces blurred per `privacy.blur_faces`,
published retained on `<prefix>/<device_id>/<camera>/snapshot` and optionally kept as files.

The frame loop only `request`s a snapshot (a reference to the frame, no copy, into a small queue
that drops and counts when full); a thread of its own crops, blurs, encodes, publishes, writes
and prunes. The event names its snapshot by id (the event's id, also written in the JPEG's
comment) and by file. Kept files are bounded by count and age; a disk that fails (full,
read-only, gone) degrades like the outbox: logged once when it starts and once when it ends,
the snapshots are still published, and it is never fatal.
"""
import datetime
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Optional

from edge.inference.annotate import (blur_regions, crop, crop_bounds, describe, draw_faces,
                                     encode_jpeg, shrink)
from edge.service import payloads

log = logging.getLogger(__name__)

QUEUE_SIZE = 8
PRUNE_EVERY_S = 600.0
SUFFIX = ".jpg"


@dataclass(frozen=True)
class Request:
    """One snapshot to make: whose, of what, where the person is."""

    snapshot_id: str
    camera: str
    image: object
    box: tuple
    kind: str
    score: float
    time: float
    path: str = None
    faces: tuple = ()  # every face box of the frame: each is blurred, not only the person's
    reason: Optional[str] = None  # a no_mask decision's kind (`mask_below_nose` / `no_mask`)


@dataclass(frozen=True)
class _Box:
    """A face as annotate draws it."""

    box: tuple
    label: str
    score: float
    kind: Optional[str] = None


def file_name(snapshot_id, camera, when):
    """`<UTC time>_<camera>_<id>.jpg`: names sort by time, and say whose they are."""
    stamp = datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}_{camera}_{snapshot_id}{SUFFIX}"


def make_jpeg(request, config, blur):
    """The JPEG of a request: the face with a margin (`crop: face`) or the frame with the
    person's box and caption (`crop: frame`); blurred first when `blur`; shrunk to max_width;
    its comment names the snapshot and the event."""
    image = request.image
    boxes = [request.box, *(f for f in request.faces if tuple(f) != tuple(request.box))]
    if config.crop == "frame":
        out = image.copy()
        if blur:
            blur_regions(out, boxes)
        out = draw_faces(out, [_Box(request.box, request.kind, request.score, request.reason)])
    else:
        out = crop(image, request.box, config.margin)
        bounds = crop_bounds(request.box, image.shape, config.margin)
        if blur and bounds is not None:
            left, top = bounds[:2]
            blur_regions(out, [tuple(v - o for v, o in zip(b, (left, top, left, top))) for b in boxes])
        elif blur:  # nothing of the box inside: the whole frame came back
            blur_regions(out, boxes)
    comment = (f"maskdet snapshot {request.snapshot_id} camera {request.camera} "
               f"{describe(request.kind, request.score, request.reason)} "
               f"{payloads.utc_now_iso(request.time)}")
    return encode_jpeg(shrink(out, config.max_width), config.jpeg_quality, comment)


class Snapshots:
    """Makes, publishes and keeps snapshots in a thread of its own. `publish(camera, jpeg)` sends
    one (the publisher's `publish_snapshot`); `topic(camera)` names where."""

    def __init__(self, config, privacy, publish=None, topic=None, clock=time.time):
        self.config = config
        self.blur = privacy.blur_faces
        self._publish = publish
        self._topic = topic
        self.clock = clock
        self.made = self.published = self.dropped = self.failed = 0
        self.kept = 0
        self.problem = None  # what is wrong with the folder now, in words
        self._queue = queue.Queue(QUEUE_SIZE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="maskdet-snapshots", daemon=True)
        self._last_prune = 0.0

    @property
    def folder(self):
        """Where snapshots are kept, or None when they are not."""
        return self.config.folder if self.config.keep else None

    def wants(self, kind):
        """True when a decision of this kind gets a snapshot."""
        return self.config.enabled and (kind == "no_mask" or not self.config.unmasked_only)

    def start(self):
        """Start the thread (it prunes the folder first)."""
        if self._thread.ident is None:
            self._thread.start()
        return self

    def request(self, snapshot_id, camera, image, box, kind, score, when, faces=(), reason=None):
        """From the frame loop: queue a snapshot (no copy of the frame, never blocks); returns
        what the event says of it (`payloads.snapshot_ref`), or None when the queue is full (the
        snapshot is dropped and counted). `reason`: the decision's kind of no mask, if any."""
        path = os.path.join(self.folder, file_name(snapshot_id, camera, when)) if self.folder else None
        try:
            self._queue.put_nowait(Request(snapshot_id, camera, image, tuple(box), kind,
                                           float(score), when, path,
                                           tuple(tuple(f) for f in faces), reason))
        except queue.Full:
            self.dropped += 1
            log.warning("snapshot of %s %s dropped: %d are waiting to be made", camera,
                        snapshot_id, QUEUE_SIZE)
            return None
        topic = self._topic(camera) if (self.config.publish and self._topic) else None
        return payloads.snapshot_ref(snapshot_id, topic, path)

    def _run(self):
        self._prune()
        while not self._stop.is_set():
            try:
                request, got = self._queue.get(timeout=1.0), True
            except queue.Empty:
                request, got = None, False
            try:
                if request is not None:
                    self._take(request)
                if self.clock() - self._last_prune >= PRUNE_EVERY_S:
                    self._prune()
            except Exception:  # a bug here must not end the thread: the next one may work
                self.failed += 1
                log.exception("snapshot: unexpected error")
            finally:
                if got:
                    self._queue.task_done()

    def _take(self, request):
        try:
            jpeg = make_jpeg(request, self.config, self.blur)
        except Exception as exc:  # an odd frame: count, say, go on
            self.failed += 1
            log.error("snapshot %s could not be made: %s", request.snapshot_id, exc)
            return
        self.made += 1
        if self.config.publish and self._publish is not None:
            try:
                self._publish(request.camera, jpeg)
                self.published += 1
            except Exception:
                self.failed += 1
                log.exception("snapshot %s could not be published", request.snapshot_id)
        if request.path:
            self._keep(request.path, jpeg)

    def _keep(self, path, jpeg):
        """Write atomically (a temporary file renamed), then prune. A fault is logged when it
        starts and when it ends, never raised."""
        temporary = path + ".part"
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(temporary, "wb") as handle:
                handle.write(jpeg)
            os.replace(temporary, path)
        except OSError as exc:
            self.failed += 1
            self._trouble(f"snapshots cannot be kept in {self.folder} ({exc.strerror or exc}); "
                          "they are still published")
            _remove_quietly(temporary)
            return
        if self.problem is not None:
            log.warning("snapshots are kept in %s again", self.folder)
            self.problem = None
        self.kept += 1
        self._prune()

    def _trouble(self, problem):
        if self.problem != problem:
            log.error("%s", problem)
        self.problem = problem

    def _prune(self):
        """Delete kept files older than max_age_h, then the oldest beyond max_files."""
        self._last_prune = self.clock()
        if not self.folder:
            return
        try:
            names = sorted(n for n in os.listdir(self.folder) if n.endswith(SUFFIX))
        except FileNotFoundError:
            self.kept = 0
            return
        except OSError as exc:
            self._trouble(f"snapshot folder {self.folder} cannot be read ({exc.strerror or exc})")
            return
        too_old = self.clock() - self.config.max_age_h * 3600.0
        keep = []
        for name in names:
            path = os.path.join(self.folder, name)
            try:
                old = os.stat(path).st_mtime < too_old
            except OSError:
                continue
            if old:
                _remove_quietly(path)
            else:
                keep.append(path)
        excess = len(keep) - self.config.max_files
        for path in keep[:max(0, excess)]:
            _remove_quietly(path)
        self.kept = min(len(keep), self.config.max_files)

    def file_of(self, snapshot_id):
        """The kept file of a snapshot id (32 hex digits), or None."""
        if not self.folder:
            return None
        tail = f"_{snapshot_id}{SUFFIX}"
        try:
            for name in os.listdir(self.folder):
                if name.endswith(tail):
                    return os.path.join(self.folder, name)
        except OSError:
            return None
        return None

    def status(self):
        """What stats report."""
        return {"made": self.made, "published": self.published, "kept": self.kept,
                "dropped": self.dropped, "failed": self.failed, "problem": self.problem}

    def wait_idle(self, timeout):
        """Block until every queued snapshot is made (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0 or not self._thread.is_alive():
                return True
            time.sleep(0.02)
        return False

    def stop(self, timeout=5.0):
        """Make what is queued (within `timeout`), then stop."""
        if self._thread.ident is not None:
            self.wait_idle(timeout)
        self._stop.set()
        try:
            self._queue.put_nowait(None)  # wake the thread now
        except queue.Full:
            pass
        if self._thread.ident is not None:
            self._thread.join(timeout)


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass
