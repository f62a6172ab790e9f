"""Faces -> tracks, per camera: greedy IoU matching; a face that vanishes for a few frames keeps
its track. Each track also notes since when its box has stood still (a picture never moves)."""
import math
from dataclasses import dataclass

import numpy as np

from edge.inference.geometry import iou

# A box stands still while its centre stays within this fraction of its size of where the
# stillness began, and its size within this fraction of that box's size.
STILL_MOVE = 0.05
STILL_RESIZE = 0.10


@dataclass
class Track:
    """One person followed across frames."""

    track_id: int
    box: tuple
    first_seen: float
    last_seen: float
    misses: int = 0
    hits: int = 0
    face: object = None  # the FaceResult of the last frame that saw it
    still_box: tuple = None  # the box where the track last stood still ...
    still_since: float = None  # ... and since when (the clock `update` was given)

    def still_for(self, now):
        """Seconds the box has stood still (within STILL_MOVE and STILL_RESIZE) up to `now`."""
        return 0.0 if self.still_since is None else now - self.still_since


def _size(box):
    return ((box[2] - box[0]) + (box[3] - box[1])) / 2.0


def moved(anchor, box):
    """True when `box` is no longer where `anchor` was: its centre moved more than STILL_MOVE of
    the anchor's size, or its size changed by more than STILL_RESIZE."""
    size = max(_size(anchor), 1e-6)
    shift = math.hypot((box[0] + box[2] - anchor[0] - anchor[2]) / 2.0,
                       (box[1] + box[3] - anchor[1] - anchor[3]) / 2.0)
    return shift > STILL_MOVE * size or abs(_size(box) / size - 1.0) > STILL_RESIZE


class Tracker:
    """Assigns each frame's faces to tracks; tracks unseen for more than `max_misses` frames end."""

    def __init__(self, iou_threshold=0.3, max_misses=5):
        self.iou_threshold = iou_threshold
        self.max_misses = max_misses
        self.tracks = []
        self._next_id = 1

    def match(self, faces):
        """The live track each of `faces` (objects with `.box`) would continue, None for a new
        face; changes nothing (`update` matches the same way), so it can be asked before the
        faces are classified."""
        pairs = []
        for t_index, track in enumerate(self.tracks):
            if faces:
                overlaps = iou(track.box, [f.box for f in faces])
                pairs += [(o, t_index, f) for f, o in enumerate(overlaps)]
        matched = [None] * len(faces)
        taken = set()
        for overlap, t_index, f_index in sorted(pairs, key=lambda p: -p[0]):
            if overlap < self.iou_threshold:
                break
            if t_index in taken or matched[f_index] is not None:
                continue
            taken.add(t_index)
            matched[f_index] = self.tracks[t_index]
        return matched

    def update(self, faces, now):
        """Match `faces` (objects with `.box`) to tracks; returns (live tracks, ended tracks)."""
        matched = self.match(faces)
        seen = {t.track_id for t in matched if t is not None}
        for face, track in zip(faces, matched):
            if track is not None:
                self._see(track, face, now)
        ended = []
        for track in self.tracks:
            if track.track_id not in seen:
                track.misses += 1
                track.face = None
                if track.misses > self.max_misses:
                    ended.append(track)
        gone = {e.track_id for e in ended}
        self.tracks = [t for t in self.tracks if t.track_id not in gone]
        for face, track in zip(faces, matched):
            if track is None:
                track = Track(self._next_id, tuple(face.box), now, now)
                self._next_id += 1
                self._see(track, face, now)
                self.tracks.append(track)
        return list(self.tracks), ended

    @staticmethod
    def _see(track, face, now):
        track.box = tuple(np.asarray(face.box, dtype=float))
        track.last_seen = now
        track.misses = 0
        track.hits += 1
        track.face = face
        if track.still_box is None or moved(track.still_box, track.box):
            track.still_box, track.still_since = track.box, now
