"""The image sets a classifier is judged on: the validation split and the real-world scene faces."""
import json
import os
from dataclasses import dataclass

import numpy as np

from edge.errors import DataError
from edge.inference.preprocess import DEFAULT_MARGIN, resize_square

from . import dataset, run_folder
from .scene_faces import iter_scene_faces


@dataclass
class EvalSet:
    """Named RGB uint8 images (any size) with their decision's index (dataset.DECISIONS: 0 mask,
    1 no mask) and a name for each image."""

    name: str
    images: list
    labels: np.ndarray
    names: list
    kinds: list = None  # the annotation's own label of each face (with_mask, ...), when known


def read_split(run_dir):
    """The run's split.json: {'train': [[path, label]...], 'val': [...]}."""
    path = run_folder.path(run_dir, run_folder.SPLIT)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path} ({exc}): is {run_dir} a training run folder?") from exc


def split_set(run_dir, part="val", size=None, limit=None):
    """Images of one side of a run's split, resized to `size` if given, else as they are (the
    scorers then resize them as the Pi does)."""
    entries = read_split(run_dir)[part][:limit]
    samples = [dataset.Sample(path, label, "") for path, label in entries]
    images, labels, kept = dataset.load_images(samples, size)
    return EvalSet(run_folder.VALIDATION if part == "val" else part, list(images),
                   dataset.no_mask_truth(labels),
                   [s.path for s in kept], [kind_of_path(s.path) for s in kept])


def kind_of_path(path):
    """The kind of face (`with_mask`, `without_mask`, `mask_weared_incorrect`) a training image's
    label folder names, or None."""
    folder = os.path.basename(os.path.dirname(path))
    return folder if folder in dataset.FOLDER_LABELS else None


def real_world_set(annotations, min_size=32, margin=DEFAULT_MARGIN, photos=None,
                   name=run_folder.REAL_WORLD):
    """Faces of at least `min_size` px from held-out annotated scenes (incorrectly worn = no mask);
    only from `photos` (image names) when given."""
    images, labels, names, kinds = [], [], [], []
    for image_name, index, label, crop in iter_scene_faces(annotations, min_size, margin, photos):
        images.append(crop)
        labels.append(dataset.FOLDER_LABELS[label])
        names.append(f"{image_name}#{index}")
        kinds.append(label)
    if not images:
        raise DataError(f"no face of at least {min_size} px in {annotations}")
    return EvalSet(name, images, dataset.no_mask_truth(labels), names, kinds)


def held_out_scenes_set(held_out, min_size=32, margin=DEFAULT_MARGIN):
    """The faces of the training scenes' held-out photos ({annotations: image names}), mostly
    masks worn below the nose: their own test set."""
    sets = [real_world_set(path, min_size, margin, photos, run_folder.HELD_OUT_SCENES)
            for path, photos in held_out.items()]
    return EvalSet(run_folder.HELD_OUT_SCENES, [i for s in sets for i in s.images],
                   np.concatenate([s.labels for s in sets]), [n for s in sets for n in s.names],
                   [k for s in sets for k in s.kinds])


def batches_at(images, size, batch=64):
    """Yield uint8 [B, size, size, 3] batches of the images resized as the Pi resizes."""
    for start in range(0, len(images), batch):
        yield np.stack([resize_square(im, size) for im in images[start:start + batch]])
