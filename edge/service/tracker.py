"""Faces -> tracks, per camera: greedy IoU matching; a face that vanishes for a few frames keeps
its track."""
from dataclasses import dataclass

import numpy as np

from edge.inference.geometry import iou


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


class Tracker:
    """Assigns each frame's faces to tracks; tracks unseen for more than `max_misses` frames end."""

    def __init__(self, iou_threshold=0.3, max_misses=5):
        self.iou_threshold = iou_threshold
        self.max_misses = max_misses
        self.tracks = []
        self._next_id = 1

    def update(self, faces, now):
        """Match `faces` (objects with `.box`) to tracks; returns (live tracks, ended tracks)."""
        unmatched = list(range(len(faces)))
        pairs = []
        for t_index, track in enumerate(self.tracks):
            if unmatched:
                overlaps = iou(track.box, [faces[i].box for i in unmatched])
                pairs += [(o, t_index, f) for o, f in zip(overlaps, unmatched)]
        taken_tracks, taken_faces = set(), set()
        for overlap, t_index, f_index in sorted(pairs, key=lambda p: -p[0]):
            if overlap < self.iou_threshold:
                break
            if t_index in taken_tracks or f_index in taken_faces:
                continue
            taken_tracks.add(t_index)
            taken_faces.add(f_index)
            self._see(self.tracks[t_index], faces[f_index], now)
        ended = []
        for t_index, track in enumerate(self.tracks):
            if t_index not in taken_tracks:
                track.misses += 1
                track.face = None
                if track.misses > self.max_misses:
                    ended.append(track)
        self.tracks = [t for t in self.tracks if t not in ended]
        for f_index in range(len(faces)):
            if f_index not in taken_faces:
                track = Track(self._next_id, tuple(faces[f_index].box), now, now)
                self._next_id += 1
                self._see(track, faces[f_index], now)
                self.tracks.append(track)
        return list(self.tracks), ended

    @staticmethod
    def _see(track, face, now):
        track.box = tuple(np.asarray(face.box, dtype=float))
        track.last_seen = now
        track.misses = 0
        track.hits += 1
        track.face = face
