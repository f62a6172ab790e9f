"""Faces cut from annotated scene photos (`annotations.json`: image, faces with box and label)."""
import json
import logging
import os
import random

import cv2

from edge.errors import DataError
from edge.inference.preprocess import DEFAULT_MARGIN, crop_face

from .dataset import FOLDER_LABELS, GROUP_SEPARATOR, read_rgb

log = logging.getLogger(__name__)


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


def export_scene_faces(annotations_paths, out_dir, min_size=24, margin=DEFAULT_MARGIN,
                       held_out=None):
    """Write scene faces as `<out_dir>/<label>/<photo>__<i>.png`, a training data root.

    The photo's name before `__` keeps all faces of one photo on one side of the split.
    `held_out`: {annotations path: image names} of photos kept out (test sets).
    Returns {label folder: count}.
    """
    counts = {}
    held_out = held_out or {}
    for annotations in annotations_paths:
        prefix = os.path.basename(os.path.dirname(os.path.abspath(annotations)))
        skip = held_out.get(annotations, ())
        for image_name, index, label, crop in iter_scene_faces(annotations, min_size, margin,
                                                               skip_photos=skip):
            folder = os.path.join(out_dir, label)
            os.makedirs(folder, exist_ok=True)
            stem = os.path.splitext(os.path.basename(image_name))[0]
            name = f"{prefix}-{stem}{GROUP_SEPARATOR}{index}.png"
            cv2.imwrite(os.path.join(folder, name), crop[..., ::-1])
            counts[label] = counts.get(label, 0) + 1
    if not counts:
        raise DataError(f"no face of at least {min_size} px in {', '.join(annotations_paths)}")
    return counts
