"""Labelled face images: folders per label, a grouped stratified split, decoding, fingerprints."""
import hashlib
import logging
import os
import random
from dataclasses import dataclass

import numpy as np

from edge.errors import DataError
from edge.inference.images import is_image_file, read_image
from edge.inference.preprocess import resize_square

log = logging.getLogger(__name__)

# What is decided of a face, and the classes every metric counts: a mask worn below the nose does
# not protect, so it is `no_mask` there.
DECISIONS = ("mask", "no_mask")
# The model's outputs: no mask comes in two kinds, which look nothing alike (issue 12). A model
# with its own output for masks below the nose gives them their own boundary; P(no mask) is
# everything but P(mask) (`no_mask_truth`, `scorers.no_mask_of`), so the threshold, the alert
# and the metrics stay two-class. Models made before it have the first two outputs only.
LABELS = ("mask", "no_mask", "mask_below_nose")
MASK, BARE, BELOW_NOSE = range(len(LABELS))
# Folder names of the public face-mask sets -> our label index.
FOLDER_LABELS = {"with_mask": MASK, "without_mask": BARE, "mask_weared_incorrect": BELOW_NOSE}
# Crops cut from one photo share the part of their name before this separator, so that a split
# keeps all faces of one photo on the same side.
GROUP_SEPARATOR = "__"


@dataclass(frozen=True)
class Sample:
    """One labelled image file."""

    path: str
    label: int
    group: str
    folder: str = ""


def _group_of(root, path):
    stem = os.path.splitext(os.path.basename(path))[0]
    return root + ":" + stem.split(GROUP_SEPARATOR)[0]


def list_samples(roots):
    """All images under each root's label folders (`with_mask/`, `without_mask/`, ...)."""
    samples = []
    for root in roots:
        if not os.path.isdir(root):
            raise DataError(f"data folder {root} does not exist")
        found = [name for name in FOLDER_LABELS if os.path.isdir(os.path.join(root, name))]
        if not found:
            raise DataError(f"data folder {root} has none of the label folders "
                            f"{', '.join(FOLDER_LABELS)}: put each image in the folder of its label")
        for folder in found:
            directory = os.path.join(root, folder)
            for name in sorted(os.listdir(directory)):
                if is_image_file(name):
                    path = os.path.join(directory, name)
                    samples.append(Sample(path, FOLDER_LABELS[folder], _group_of(root, path), folder))
    if not samples:
        raise DataError("no images found under " + ", ".join(roots))
    return samples


def split_samples(samples, val_fraction=0.2, seed=0):
    """Deterministic split stratified by label; samples of one group stay on one side, also
    when they carry different labels (the faces of one photo): a group's side is drawn with
    the first label it has, and the later labels draw among the groups still without one."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"validation fraction {val_fraction} must lie between 0 and 1")
    in_val = {}  # group -> on the validation side
    for label in sorted({s.label for s in samples}):
        groups = sorted({s.group for s in samples if s.label == label} - in_val.keys())
        random.Random(f"{seed}:{label}").shuffle(groups)
        n_val = max(1, round(len(groups) * val_fraction)) if len(groups) > 1 else 0
        in_val.update((group, i < n_val) for i, group in enumerate(groups))
    train = [s for s in samples if not in_val[s.group]]
    val = [s for s in samples if in_val[s.group]]
    return train, val


def split_like(samples, split, val_fraction=0.2, seed=0):
    """The sides of a previous run's split ({'train': [[path, label]...], 'val': [...]}) for
    the samples it lists, and for the other faces of their photos (group); the rest are split by
    `split_samples` (so `val_fraction` and `seed` apply to those alone)."""
    by_path = {os.path.abspath(path): part for part in ("train", "val") for path, _ in split[part]}
    by_group = {}  # a photo's faces stay together: a new face joins its photo's side
    for sample in samples:
        if os.path.abspath(sample.path) in by_path:
            by_group.setdefault(sample.group, by_path[os.path.abspath(sample.path)])
    placed = {s.path: by_path.get(os.path.abspath(s.path), by_group.get(s.group)) for s in samples}
    new = [s for s in samples if placed[s.path] is None]
    train, val = split_samples(new, val_fraction, seed) if new else ([], [])
    return ([s for s in samples if placed[s.path] == "train"] + train,
            [s for s in samples if placed[s.path] == "val"] + val)


def read_rgb(path):
    """Decode an image file to RGB uint8, or None when it is unreadable."""
    try:
        image = read_image(path)
    except DataError:
        return None
    return np.ascontiguousarray(image[..., ::-1])


def load_images(samples, size=None, progress=None):
    """Decode samples and resize each to size x size; unreadable files are reported and skipped.

    Returns (images: uint8 [N, size, size, 3], or a list at their own sizes when `size` is None;
    labels int [N]; kept samples).
    """
    images, kept = [], []
    iterator = progress(samples) if progress else samples
    for sample in iterator:
        image = read_rgb(sample.path)
        if image is None:
            log.warning("skipping unreadable image %s", sample.path)
            continue
        images.append(resize_square(image, size) if size else image)
        kept.append(sample)
    if not kept:
        raise DataError("none of the images could be decoded")
    labels = np.array([s.label for s in kept], dtype=np.int64)
    return (np.stack(images) if size else images), labels, kept


def fingerprint(samples):
    """sha256 over the label and bytes of every file, in a fixed order: names the data exactly."""
    digest = hashlib.sha256()
    for sample in sorted(samples, key=lambda s: s.path):
        digest.update(f"{sample.label}:{os.path.basename(sample.path)}:".encode())
        with open(sample.path, "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


def class_counts(labels):
    """{label name: count} for an array of label indices."""
    return {name: int(np.sum(np.asarray(labels) == i)) for i, name in enumerate(LABELS)}


def as_outputs(labels, outputs):
    """Label indices for a model of `outputs` outputs: with two, a mask below the nose is
    `no_mask`; with three, as they are. Labels of -1 (none) stay."""
    labels = np.asarray(labels)
    if outputs >= len(LABELS):
        return labels
    return np.where(labels == BELOW_NOSE, BARE, labels)


def no_mask_truth(labels):
    """The decision index (DECISIONS: 0 mask, 1 no mask) of each label index: both kinds of no
    mask are no mask."""
    return (np.asarray(labels) != MASK).astype(np.int64)
