"""Faces that carry no label, for distillation: found by the Pi's own detector in the shared
video frames and in the training scene photos (faces nobody annotated), framed as the Pi frames
them. The held-out photos and the real-world scenes are never used."""
import logging
import os

import cv2

from edge.inference.detectors import DetectorSettings, create_detector
from edge.inference.geometry import iou
from edge.inference.preprocess import DEFAULT_MARGIN, crop_face

from .dataset import read_rgb
from .distill import UNLABELLED, write_face
from .progress import progress
from .scene_faces import read_annotations

log = logging.getLogger(__name__)

MIN_SIZE = 24  # the smallest face side kept, as for the labelled scene faces
ANNOTATED_IOU = 0.3  # a detection overlapping an annotated face this much is that (labelled) face
EVERY_NTH_FRAME = 4


def video_faces(detector, video_path, every=EVERY_NTH_FRAME, min_size=MIN_SIZE):
    """Yield (name, RGB crop) for the faces of every `every`-th frame of a video."""
    capture = cv2.VideoCapture(video_path)
    stem = os.path.splitext(os.path.basename(video_path))[0]
    number = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if number % every == 0:
                rgb = frame[..., ::-1]
                for i, face in enumerate(detector.detect(frame)):
                    if face.size >= min_size:
                        yield f"video-{stem}-{number:05d}-{i}.png", crop_face(rgb, face.box, DEFAULT_MARGIN)
            number += 1
    finally:
        capture.release()


def unannotated_scene_faces(detector, annotations_path, skip_photos=(), min_size=MIN_SIZE):
    """Yield (name, RGB crop) for faces the detector finds in annotated photos that match no
    annotated face (people in the background nobody labelled, and some false faces)."""
    root = os.path.dirname(os.path.abspath(annotations_path))
    prefix = os.path.basename(root)
    for entry in progress(read_annotations(annotations_path), desc=f"unlabelled {prefix}"):
        if entry["image"] in skip_photos:
            continue
        rgb = read_rgb(os.path.join(root, entry["image"]))
        if rgb is None:
            continue
        annotated = [f["box"] for f in entry["faces"]]
        stem = os.path.splitext(os.path.basename(entry["image"]))[0]
        for i, face in enumerate(detector.detect(rgb[..., ::-1].copy())):
            if face.size < min_size:
                continue
            if annotated and iou(face.box, annotated).max() >= ANNOTATED_IOU:
                continue
            yield f"scene-{prefix}-{stem}-{i}.png", crop_face(rgb, face.box, DEFAULT_MARGIN)


def export_unlabelled_faces(out_dir, videos, annotations_paths, held_out=None):
    """Write unlabelled faces into `<out_dir>/unlabelled/`; returns {source kind: count}.
    `held_out`: {annotations path: image names} never looked at."""
    detector = create_detector(DetectorSettings())
    held_out = held_out or {}
    counts = {"video": 0, "scene": 0}
    for video in videos:
        for name, crop in video_faces(detector, video):
            write_face(out_dir, name, crop)
            counts["video"] += 1
    for annotations in annotations_paths:
        for name, crop in unannotated_scene_faces(detector, annotations, held_out.get(annotations, ())):
            write_face(out_dir, name, crop)
            counts["scene"] += 1
    log.info("unlabelled faces in %s: %s", os.path.join(out_dir, UNLABELLED), counts)
    return counts
