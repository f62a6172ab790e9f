"""Frames to measure on: still images and (a sample of) video frames, with their decode time."""
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
