"""Distillation: a trained classifier (the teacher; or several, whose scores are averaged)
gives soft scores that a smaller one (the student) learns from, on the labelled training faces
and on faces that carry no label. The student keeps its teachers' split.

The targets of a labelled face mix its label with the teacher's softened score; an unlabelled
face has the teacher's score alone. The teacher's scores come from its float TFLite model, fed
exactly as the Pi feeds a face (`scorers.tflite_scorer`), once per source image.
"""
import logging
import os

import cv2
import numpy as np

from edge.errors import DataError
from edge.inference.images import is_image_file

from . import dataset, recipe, run_folder
from .progress import progress

log = logging.getLogger(__name__)

UNLABELLED = "unlabelled"  # the folder of unlabelled faces in a distillation data root


def teacher_model(run_dir, name="mask_classifier"):
    """The float TFLite model of a quantized teacher run, or DataError saying what to run."""
    path = run_folder.path(run_dir, run_folder.float_model(name))
    if not os.path.isfile(path):
        raise DataError(f"teacher run {run_dir} has no {os.path.basename(path)}: train and "
                        "quantize the teacher first (`maskdet-convert train` then `quantize`)")
    return path


def teacher_input_size(teacher_path):
    """The input side in pixels of a teacher's TFLite model."""
    from edge.inference import tensors
    from edge.inference.runtime import find_runtime, open_interpreter

    return tensors.input_size(open_interpreter(teacher_path, find_runtime()))[0]


def teacher_probabilities(teacher_paths, images, desc="teacher"):
    """P(no mask) of the teachers for each RGB uint8 image (any size), in batches with
    progress: with several teachers (an ensemble) the mean of their scores."""
    from .scorers import tflite_scorer

    per_teacher = []
    for number, path in enumerate(teacher_paths, 1):
        score = tflite_scorer(path)
        label = f"{desc} {number}/{len(teacher_paths)}" if len(teacher_paths) > 1 else desc
        chunks = [score(images[start:start + 256])
                  for start in progress(range(0, len(images), 256), desc=label)]
        per_teacher.append(np.concatenate(chunks) if chunks else np.zeros(0))
    return np.mean(per_teacher, axis=0)


def teachers_split(teacher_paths):
    """The split.json the teachers' runs share (a student validating on faces no teacher
    trained on), or DataError when their runs were split differently."""
    from .evaluation_sets import read_split

    runs = [os.path.dirname(path) for path in teacher_paths]
    splits = [read_split(run) for run in runs]
    for run, split in zip(runs[1:], splits[1:]):
        if split != splits[0]:
            raise DataError(f"teacher runs {runs[0]} and {run} were split differently: a face "
                            "one trained on would be in another's validation; give teachers "
                            "trained on one split")
    return splits[0]


def teachers_of(distillation):
    """[(teacher model path, input size)] of a run's distillation summary (also the single
    `teacher` of runs before ensembles)."""
    if "teachers" in distillation:
        return list(zip(distillation["teachers"], distillation["teacher_sizes"]))
    return [(distillation["teacher"], distillation["teacher_size"])]


def soften(p_no_mask, temperature=recipe.DISTILL_TEMPERATURE):
    """Two-class probabilities [P(mask), P(no mask)] with the logit divided by `temperature`."""
    p = np.clip(np.asarray(p_no_mask, dtype=np.float64), 1e-6, 1 - 1e-6)
    soft = 1.0 / (1.0 + np.exp(-np.log(p / (1 - p)) / temperature))
    return np.stack([1.0 - soft, soft], axis=1)


def teacher_rows(labels, p_no_mask, temperature=recipe.DISTILL_TEMPERATURE,
                 outputs=len(dataset.LABELS)):
    """The softened teacher score of each face over the first `outputs` of dataset.LABELS:
    P(mask) on `mask`, and P(no mask) on the kind of no mask its label names (a mask below the
    nose), else on `no_mask` (a bare face, a mask the teacher doubts, a face without a label).
    The teacher says whether a mask protects; the label says which kind of no mask it is."""
    labels = np.asarray(labels)
    two = soften(p_no_mask, temperature)
    rows = np.zeros((len(labels), outputs))
    rows[:, dataset.MASK] = two[:, 0]
    no_mask_column = np.where(labels == dataset.BELOW_NOSE, dataset.BELOW_NOSE, dataset.BARE)
    rows[np.arange(len(labels)), no_mask_column] = two[:, 1]
    return rows


def soft_targets(labels, p_no_mask, alpha=recipe.DISTILL_ALPHA,
                 temperature=recipe.DISTILL_TEMPERATURE, outputs=len(dataset.LABELS)):
    """Per face, alpha * one-hot(label) + (1 - alpha) * the softened teacher score
    (`teacher_rows`); a label of -1 (no label) takes the softened teacher score alone. Rows
    sum to one, over the model's `outputs` (labels as `dataset.as_outputs` gives them)."""
    labels = np.asarray(labels)
    teacher = teacher_rows(labels, p_no_mask, temperature, outputs)
    hard = np.zeros_like(teacher)
    known = labels >= 0
    hard[known, labels[known]] = 1.0
    weight = np.where(known, alpha, 0.0)[:, None]
    return (weight * hard + (1.0 - weight) * teacher).astype(np.float32)


def list_unlabelled(roots):
    """Unlabelled face images (`<root>/unlabelled/*.png`) as Samples with label -1."""
    samples = []
    for root in roots:
        folder = os.path.join(root, UNLABELLED)
        if not os.path.isdir(folder):
            raise DataError(f"{root} has no {UNLABELLED}/ folder of face images")
        samples += [dataset.Sample(os.path.join(folder, n), -1, f"{root}:{n}", UNLABELLED)
                    for n in sorted(os.listdir(folder)) if is_image_file(n)]
    return samples


def agreement_with_teacher(student_p, teacher_p, threshold=0.5):
    """How often the student's label equals the teacher's, and the mean score gap."""
    student_p, teacher_p = np.asarray(student_p), np.asarray(teacher_p)
    return {"same_label": float(np.mean((student_p >= threshold) == (teacher_p >= threshold))),
            "mean_score_difference": float(np.mean(np.abs(student_p - teacher_p)))}


def write_face(out_dir, name, crop_rgb):
    """Write one RGB face crop as PNG into the unlabelled folder of `out_dir`."""
    folder = os.path.join(out_dir, UNLABELLED)
    os.makedirs(folder, exist_ok=True)
    cv2.imwrite(os.path.join(folder, name), np.ascontiguousarray(crop_rgb[..., ::-1]))
