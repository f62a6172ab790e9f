"""The whole conversion job in one call: data, training at each size, quantization, Edge TPU
checks, the smallest size with the next as its second opinion, the choice of model, the shipped
model and its card."""
import logging
import os

from edge.errors import DataError

from . import defaults, recipe
from .cascade import make_cascade
from .distill import UNLABELLED, teacher_model
from .edgetpu_rules import check_model, format_report
from .evaluation_sets import held_out_scenes_set, real_world_set, split_set
from .publish import publish
from .quantize import quantize_run
from .scene_faces import export_scene_faces
from .train import train
from .unlabelled_faces import export_unlabelled_faces
from .weights import fetch_imagenet_weights

log = logging.getLogger(__name__)

FULL = {"limit": None, "views": 3, "head_epochs": 8, "tune_epochs": 12, "calibration": 1000,
        "max_loss": 0.01}
# A smoke run proves every step works end to end on a few images in a few minutes; its model is
# not meant to be good, so the int8 quality gate is opened (its own tests cover the gate).
SMOKE = {"limit": 40, "views": 1, "head_epochs": 2, "tune_epochs": 1, "calibration": 20,
         "max_loss": 1.0}


def _unlabelled_root(work_dir, held_out, smoke):
    """The folder of unlabelled faces for distillation, exported once per work folder (a smoke
    run takes the video faces only)."""
    root = os.path.join(work_dir, "unlabelled_faces")
    if not os.path.isdir(os.path.join(root, UNLABELLED)):
        export_unlabelled_faces(root, defaults.unlabelled_videos(),
                                [] if smoke else defaults.training_scene_annotations(), held_out)
    return root


def run_pipeline(work_dir, sizes=(224, 160, 128), out_dir=defaults.MODELS_DIR, smoke=False,
                 name="mask_classifier", baseline_reports=None, teacher_size=224,
                 outputs=recipe.OUTPUTS):
    """Train, quantize and check each size under `work_dir`, then publish the best to `out_dir`.

    The `teacher_size` run trains first on the labels alone; every other size is a student
    distilled from it (its scores on the training faces and on unlabelled ones). With no
    `teacher_size` among `sizes`, every size trains on the labels alone."""
    settings = SMOKE if smoke else FULL
    weights_file = fetch_imagenet_weights()
    held_out = defaults.held_out_scene_photos()
    scene_dir = os.path.join(work_dir, "scene_faces")
    if not os.path.isdir(scene_dir):
        export_scene_faces(defaults.training_scene_annotations(), scene_dir, held_out=held_out)
    roots = defaults.face_roots() + [scene_dir]
    tests = [real_world_set(defaults.real_world_annotations()), held_out_scenes_set(held_out)]
    if settings["limit"]:
        for test in tests:
            test.images, test.labels = test.images[:60], test.labels[:60]
            test.names, test.kinds = test.names[:60], test.kinds[:60]
    runs, teacher = [], None
    order = sorted(sizes, key=lambda size: size != teacher_size)  # the teacher first
    for size in order:
        run_dir = os.path.join(work_dir, f"r{size}")
        log.info("=== input size %d: %s%s", size, run_dir, " (student)" if teacher else "")
        train(roots, run_dir, size=size, weights_file=weights_file, views=settings["views"],
              head_epochs=settings["head_epochs"], tune_epochs=settings["tune_epochs"],
              limit=settings["limit"], teachers=[teacher] if teacher else (),
              outputs=outputs,
              unlabelled_roots=[_unlabelled_root(work_dir, held_out, smoke)] if teacher else ())
        sets = [split_set(run_dir, "val", size)] + tests
        meta = quantize_run(run_dir, sets, name, settings["calibration"], settings["max_loss"])
        report = check_model(os.path.join(run_dir, meta["files"]["int8"]))
        log.info("\n%s", format_report(report))
        runs.append(run_dir)
        if size == teacher_size:
            teacher = teacher_model(run_dir, name)
    runs += _second_opinion_pair(work_dir, sorted(sizes), tests, name)
    return publish(runs, out_dir, name, baseline_reports, tests)


def _second_opinion_pair(work_dir, sizes, tests, name):
    """[the run folder of the smallest size with the next size as its second opinion], or []
    when there is no next size or the second changes no validation decision."""
    if len(sizes) < 2:
        return []
    first, second = (os.path.join(work_dir, f"r{size}") for size in sizes[:2])
    out = os.path.join(work_dir, f"r{sizes[0]}+{sizes[1]}")
    try:
        make_cascade(first, second, out, [split_set(first, "val")] + tests, name)
    except DataError as exc:
        log.info("no pair of %s and %s: %s", first, second, exc)
        return []
    return [out]
