"""Frames to measure on: still images and (a sample of) video frames, with their decode time;
photos of several faces chosen from the scene annotations."""
import collections
import json
import os
import time

import cv2
import numpy as np

from edge.inference.images import decode_image


def image_frames(paths):
    """Yield (source, frame, decode_ms) for image files (decode = file bytes -> BGR array)."""
    for path in paths:
        data = np.fromfile(path, dtype=np.uint8)
        start = time.perf_counter()
        frame = decode_image(data, path)
        yield os.path.basename(path), frame, (time.perf_counter() - start) * 1000.0


def video_frames(path, limit=None):
    """Yield (source, frame, decode_ms) for the first `limit` frames of a video file."""
    capture = cv2.VideoCapture(path)
    try:
        count = 0
        while limit is None or count < limit:
            start = time.perf_counter()
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield os.path.basename(path), frame, (time.perf_counter() - start) * 1000.0
    finally:
        capture.release()


def load_frames(images, videos, per_video=None):
    """All frames in memory: [(source, frame, decode_ms)]."""
    frames = list(image_frames(images))
    for video in videos:
        frames += list(video_frames(video, per_video))
    return frames


def annotated_faces(entry, min_side):
    """The annotated face boxes of a photo whose shorter side is at least `min_side` px."""
    return [f["box"] for f in entry["faces"]
            if min(f["box"][2] - f["box"][0], f["box"][3] - f["box"][1]) >= min_side]


def multi_face_photos(annotation_paths, count=30, faces=(4, 8), min_side=32):
    """Photos of several annotated faces, chosen from the annotations alone (deterministic):
    those with `faces` (least, most) faces of at least `min_side` px, of one size (the most
    common among them: the baseline takes its frames as one array), `count` spread evenly over
    them in path order. Returns [(path, [box])]."""
    candidates = []
    for annotations in annotation_paths:
        root = os.path.dirname(os.path.abspath(annotations))
        with open(annotations, encoding="utf-8") as handle:
            for entry in json.load(handle):
                boxes = annotated_faces(entry, min_side)
                if faces[0] <= len(boxes) <= faces[1]:
                    candidates.append((os.path.join(root, entry["image"]), boxes,
                                       (entry["width"], entry["height"])))
    if not candidates:
        return []
    size = collections.Counter(c[2] for c in candidates).most_common(1)[0][0]
    same = sorted((path, boxes) for path, boxes, s in candidates if s == size)
    step = max(1.0, len(same) / count)
    return [same[int(i * step)] for i in range(min(count, len(same)))]
