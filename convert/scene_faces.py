"""Faces cut from annotated scene photos (`annotations.json`: image, faces with box and label)."""
import json
import logging
import os
import random

import cv2
import numpy as np

from edge.errors import DataError
from edge.inference.geometry import match_by_iou
from edge.inference.preprocess import DEFAULT_MARGIN, crop_face

from .dataset import FOLDER_LABELS, GROUP_SEPARATOR, read_rgb
from .progress import progress
from .recipe import SCENE_FACE_FRAMINGS

log = logging.getLogger(__name__)

DETECTOR_MATCH_IOU = 0.4  # as the decisions bench matches a detection to an annotated face
DETECTOR_SUFFIX = "d"  # `<photo>__<i>d.png`: face i of the photo, framed by the detector's box


def read_annotations(path):
    """The list of annotated images in an annotations.json, checked for the keys we use."""
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read annotations {path}: {exc}") from exc
    for i, entry in enumerate(entries):
        if "image" not in entry or "faces" not in entry:
            raise DataError(f"{path}: entry {i} lacks 'image' or 'faces'")
        for face in entry["faces"]:
            if face.get("label") not in FOLDER_LABELS or len(face.get("box", ())) != 4:
                raise DataError(f"{path}: entry {i} ({entry['image']}) has a face without a "
                                f"4-number box or with a label not in {sorted(FOLDER_LABELS)}")
    return entries


def held_out_photos(annotations_path, label, fraction, seed=0):
    """The seeded part (`fraction`) of the photos holding a face labelled `label`, by image name:
    kept out of training, all faces of each, so they can be a test set of that kind."""
    photos = sorted(e["image"] for e in read_annotations(annotations_path)
                    if any(f["label"] == label for f in e["faces"]))
    random.Random(f"{seed}:{label}").shuffle(photos)
    return set(photos[:round(len(photos) * fraction)])


def is_detector_framed(path):
    """True for a scene face `export_scene_faces` cut by the detector's box
    (`<photo>__<i>d.png`)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    _, separator, index = stem.rpartition(GROUP_SEPARATOR)
    return bool(separator) and index.endswith(DETECTOR_SUFFIX) and index[:-1].isdigit()


def iter_scene_faces(annotations_path, min_size=32, margin=DEFAULT_MARGIN, photos=None,
                     skip_photos=()):
    """Yield (image name, face index, folder label, RGB crop) for faces whose shorter side is at
    least `min_size` pixels, framed the way the Pi frames a detected face; only from `photos`
    (image names) when given, never from `skip_photos`."""
    root = os.path.dirname(os.path.abspath(annotations_path))
    for entry in read_annotations(annotations_path):
        if (photos is not None and entry["image"] not in photos) or entry["image"] in skip_photos:
            continue
        faces = [(i, f) for i, f in enumerate(entry["faces"])
                 if min(f["box"][2] - f["box"][0], f["box"][3] - f["box"][1]) >= min_size]
        if not faces:
            continue
        image_path = os.path.join(root, entry["image"])
        image = read_rgb(image_path)
        if image is None:
            log.warning("skipping unreadable scene image %s", image_path)
            continue
        for index, face in faces:
            yield entry["image"], index, face["label"], crop_face(image, face["box"], margin)


def iter_detector_framed_faces(detector, annotations_path, min_size=24, margin=DEFAULT_MARGIN,
                               skip_photos=()):
    """Yield (image name, face index, folder label, RGB crop) for annotated faces the Pi's
    detector finds, cut from the detector's box (narrower than the annotation's) the way the
    daemon cuts them; only faces whose detector box is at least `min_size` pixels on its shorter
    side, matched to the annotation at IoU `DETECTOR_MATCH_IOU`."""
    root = os.path.dirname(os.path.abspath(annotations_path))
    for entry in read_annotations(annotations_path):
        if entry["image"] in skip_photos or not entry["faces"]:
            continue
        image = read_rgb(os.path.join(root, entry["image"]))
        if image is None:
            log.warning("skipping unreadable scene image %s", entry["image"])
            continue
        found = detector.detect(np.ascontiguousarray(image[..., ::-1]))
        boxes = np.array([f.box for f in found], dtype=np.float64).reshape(-1, 4)
        assigned, _ = match_by_iou([f["box"] for f in entry["faces"]], boxes,
                                   [f.score for f in found], DETECTOR_MATCH_IOU)
        for index, (face, detection) in enumerate(zip(entry["faces"], assigned)):
            if detection >= 0 and found[detection].size >= min_size:
                yield entry["image"], index, face["label"], crop_face(
                    image, found[detection].box, margin)


def _framed_faces(framing, annotations, min_size, margin, skip, detector):
    if framing == "annotation":
        return iter_scene_faces(annotations, min_size, margin, skip_photos=skip)
    return iter_detector_framed_faces(detector, annotations, min_size, margin, skip)


def export_scene_faces(annotations_paths, out_dir, min_size=24, margin=DEFAULT_MARGIN,
                       held_out=None, framings=("annotation",)):
    """Write scene faces as `<out_dir>/<label>/<photo>__<i>.png`, a training data root.

    The photo's name before `__` keeps all faces of one photo on one side of the split.
    `held_out`: {annotations path: image names} of photos kept out (test sets).
    `framings`: "annotation" cuts each face by its annotated box; "detector" by the box the Pi's
    detector draws around it (`<photo>__<i>d.png`), as the daemon frames faces.
    Returns {label folder: count}.
    """
    unknown = sorted(set(framings) - set(SCENE_FACE_FRAMINGS))
    if unknown or not framings:
        raise DataError(f"framing {unknown or '(none)'}: choose from "
                        f"{', '.join(SCENE_FACE_FRAMINGS)}")
    detector = None
    if "detector" in framings:
        from edge.inference.detectors import DetectorSettings, create_detector
        detector = create_detector(DetectorSettings())
    counts = {}
    held_out = held_out or {}
    for annotations in annotations_paths:
        prefix = os.path.basename(os.path.dirname(os.path.abspath(annotations)))
        skip = held_out.get(annotations, ())
        for framing in framings:
            suffix = DETECTOR_SUFFIX if framing == "detector" else ""
            faces = _framed_faces(framing, annotations, min_size, margin, skip, detector)
            for image_name, index, label, crop in progress(faces, desc=f"{prefix} {framing}"):
                folder = os.path.join(out_dir, label)
                os.makedirs(folder, exist_ok=True)
                stem = os.path.splitext(os.path.basename(image_name))[0]
                name = f"{prefix}-{stem}{GROUP_SEPARATOR}{index}{suffix}.png"
                cv2.imwrite(os.path.join(folder, name), crop[..., ::-1])
                counts[label] = counts.get(label, 0) + 1
    if not counts:
        raise DataError(f"no face of at least {min_size} px in {', '.join(annotations_paths)}")
    return counts
