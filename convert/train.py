"""Training: a frozen ImageNet backbone with a new head, then the upper blocks fine-tuned.

The lower backbone never trains, so its features are computed once for several augmented views
of each training image (and one plain view of each validation image), and phase two trains on
those features. Phase one trains only the top, on the pooled output of the frozen upper blocks,
which is computed once too. That makes a CPU-only run of a few thousand images take minutes,
not hours.
"""
import json
import logging
import os
import sys
import time

import numpy as np

from edge.inference.preprocess import normalize

from . import dataset, distill, model as model_lib, recipe, run_folder, weights
from .augment import augment
from .progress import progress
from .synthetic_masks import BELOW_NOSE, OVER_NOSE

log = logging.getLogger(__name__)


def _verbosity():
    return 1 if sys.stdout.isatty() else 2


def _batched(model, inputs, batch_size, desc, prepare=lambda batch: batch, dtype=np.float32):
    """`model`'s outputs over `inputs` in batches (inference mode), with a progress bar."""
    chunks = []
    for start in progress(range(0, len(inputs), batch_size), desc=desc):
        batch = prepare(inputs[start:start + batch_size])
        chunks.append(model(batch, training=False).numpy().astype(dtype))
    return np.concatenate(chunks)


def _features(lower, images, desc="features"):
    """Lower-backbone features (float16, to halve the cache) of uint8 images."""
    return _batched(lower, images, 64, desc, prepare=normalize, dtype=np.float16)


def _pooled(pooled_model, features, desc="pooled"):
    """The frozen upper backbone's pooled output (float32) for cached lower features."""
    return _batched(pooled_model, features, 128, desc)


# Masks worn below the nose are the no-mask faces most like masked ones and the rarest kind:
# they get this many times the augmented views of other images (3 until issue 12, when 0.30 of
# the held-out ones were still called `mask`).
FOLDER_VIEW_BOOST = {"mask_weared_incorrect": 5}


def view_plan(samples, views):
    """Index of the source image of each augmented view: `views` per image, boosted folders more."""
    plan = []
    for v in range(max(FOLDER_VIEW_BOOST.values(), default=1) * views):
        plan += [i for i, s in enumerate(samples) if v < views * FOLDER_VIEW_BOOST.get(s.folder, 1)]
    return np.array(plan, dtype=np.int64)


def _augmented_views(images, plan, size, seed):
    rng = np.random.default_rng(seed)
    out = np.empty((len(plan), size, size, 3), np.uint8)
    for k in progress(range(len(plan)), desc="augment"):
        out[k] = augment(images[plan[k]], size, rng)
    return out


def class_weights(labels, outputs=len(dataset.LABELS)):
    """Weights per label index, the mean weight one: masks weigh as much as all faces without a
    mask together, and every face without a mask weighs the same whatever its kind: the weights
    of a two-class model, so that a third output changes the head and nothing else (weighing
    the two kinds evenly, 0.25 each, runs/f/r128d, gave 97 held-out masks below the nose and
    297 masks against these weights' 94 and 298, within one run's noise)."""
    counts = np.bincount(labels, minlength=outputs).astype(np.float64)
    decided = np.bincount(dataset.no_mask_truth(labels), minlength=2).astype(np.float64)
    present = decided > 0
    per_face = np.where(present, counts.sum() / (present.sum() * np.maximum(decided, 1)), 0.0)
    weights_ = np.where(np.arange(len(counts)) == dataset.MASK, per_face[0], per_face[1])
    return {i: float(w) if counts[i] else 0.0 for i, w in enumerate(weights_)}


def decision_loss(soft):
    """A Keras metric: the cross-entropy of P(mask) (output 0) against whether the face wears a
    mask, from label indices or (`soft`) rows of class probabilities. What is decided of a face;
    the training loss also weighs which kind of no mask it is, which decides nothing."""
    import keras
    from keras import ops

    def mask_decision_loss(y_true, y_pred):
        if soft:
            is_mask = y_true[:, :1]
        else:
            is_mask = ops.cast(ops.equal(ops.reshape(y_true, (-1, 1)), dataset.MASK), "float32")
        return keras.losses.binary_crossentropy(is_mask, y_pred[:, :1])

    return mask_decision_loss


# What early stopping and the checkpoint watch: the decision's loss on the validation split.
STOP_ON = "val_mask_decision_loss"


def _fit(model, x_train, y_train, x_val, y_val, lr, epochs, patience, checkpoint, cls_weights,
         batch):
    """Train with early stopping on the validation split's mask decision (`decision_loss`);
    `y_train` / `y_val` are label indices, or rows of class probabilities (soft targets,
    distillation)."""
    import keras

    soft = np.ndim(y_train) == 2
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss="categorical_crossentropy" if soft else "sparse_categorical_crossentropy",
                  metrics=["categorical_accuracy" if soft else "accuracy", decision_loss(soft)])
    callbacks = [
        keras.callbacks.EarlyStopping(monitor=STOP_ON, mode="min", patience=patience,
                                      restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(checkpoint, monitor=STOP_ON, mode="min",
                                        save_best_only=True, save_weights_only=True),
    ]
    history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs,
                       batch_size=batch, class_weight=cls_weights, callbacks=callbacks,
                       verbose=_verbosity(), shuffle=True)
    # compiled again without the metric: a saved model must not need its closure to load
    model.compile(loss=model.loss)
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def _distillation_targets(teachers, samples, synthetic_images, synthetic, alpha, temperature,
                          outputs):
    """Soft targets of the samples (training faces, unlabelled ones) then of the synthetic faces,
    from the teachers' scores on the original image files (framed and resized as the Pi does)
    and on the synthetic images as drawn."""
    images = [dataset.read_rgb(s.path) for s in progress(samples, desc="decode for teacher")]
    p_teacher = distill.teacher_probabilities(teachers, images + list(synthetic_images))
    labels = dataset.as_outputs([s.label for s in samples + synthetic], outputs)
    return distill.soft_targets(labels, p_teacher, alpha, temperature, outputs), p_teacher


# The synthetic twins of each bare training face: how the mask is worn -> (label, folder).
SYNTHETIC_TWINS = {BELOW_NOSE: (dataset.BELOW_NOSE, "synthetic_below_nose"),
                   OVER_NOSE: (dataset.MASK, "synthetic_over_nose")}


def _mask_twins(images, samples, seed, kinds):
    """Synthetic masks drawn on the bare training faces, each of `kinds` (SYNTHETIC_TWINS) per
    face: (uint8 images, Samples with the kind's label and folder, the source's path and group)."""
    from .synthetic_masks import mask_twins

    bare = [i for i, s in enumerate(samples) if s.folder == "without_mask"]
    twins, _ = mask_twins([images[i] for i in progress(bare, desc="mask twins")],
                          np.random.default_rng(seed), kinds)
    pictures, made = [], []
    for i, pair in zip(bare, twins):
        for kind in (kinds if pair is not None else ()):
            label, folder = SYNTHETIC_TWINS[kind]
            pictures.append(pair[kind])
            made.append(dataset.Sample(f"{samples[i].path}#{kind}", label, samples[i].group,
                                       folder))
    out = np.stack(pictures) if pictures else np.zeros((0,) + images.shape[1:], np.uint8)
    return out, made


def train(roots, out_dir, size=224, weights_file=None, val_fraction=0.2, seed=0,
          views=recipe.AUGMENTED_VIEWS, head_epochs=8, tune_epochs=12, head_lr=1e-3, tune_lr=5e-5,
          patience=3, batch=64,
          limit=None, first_tuned_block=model_lib.FIRST_TUNED_BLOCK, teachers=(),
          unlabelled_roots=(), distill_alpha=recipe.DISTILL_ALPHA,
          temperature=recipe.DISTILL_TEMPERATURE,
          synthetic_twins=tuple(SYNTHETIC_TWINS), outputs=recipe.OUTPUTS):
    """Train the classifier on the label folders under `roots`; writes the run to `out_dir`.

    `limit` keeps only that many images per label (for smoke runs); phase two fine-tunes the
    blocks from `first_tuned_block` up. With `teachers` (float TFLite classifiers of runs split
    alike) the targets are distilled from their mean score (`distill.soft_targets`), the split
    is theirs, and the faces under `unlabelled_roots` join the training set with the teachers'
    scores as their targets. Every bare training face also gets
    a twin per kind of `synthetic_twins` (`synthetic_masks`): a mask drawn below its nose,
    labelled as one, and over its nose, labelled mask. The model has `outputs` outputs: the
    first of dataset.LABELS (two: a mask below the nose is no mask). Returns the run summary.
    """
    import keras

    from .plots import plot_training_curves

    started = time.time()
    os.makedirs(out_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    samples = dataset.list_samples(roots)
    if limit:
        samples = [s for label in range(len(dataset.LABELS))
                   for s in [x for x in samples if x.label == label][:limit]]
    if teachers:
        train_set, val_set = dataset.split_like(samples, distill.teachers_split(teachers),
                                                val_fraction, seed)
    else:
        train_set, val_set = dataset.split_samples(samples, val_fraction, seed)
    log.info("%d training and %d validation images from %s", len(train_set), len(val_set), roots)
    unlabelled = []
    if teachers:
        unlabelled = distill.list_unlabelled(unlabelled_roots)[:limit] if unlabelled_roots else []
        log.info("distilling from %s, with %d unlabelled faces", ", ".join(teachers),
                 len(unlabelled))
    # Training images keep some room around the output size for crop jitter.
    train_images, y_train, kept = dataset.load_images(
        train_set + unlabelled, int(size * 1.25), lambda it: progress(it, desc="decode train"))
    train_set, unlabelled = [s for s in kept if s.label >= 0], [s for s in kept if s.label < 0]
    y_train = y_train[:len(train_set)]
    synthetic_images, synthetic = np.zeros((0,) + train_images.shape[1:], np.uint8), []
    if synthetic_twins:
        synthetic_images, synthetic = _mask_twins(train_images[:len(train_set)], train_set, seed,
                                                  synthetic_twins)
        train_images = np.concatenate([train_images, synthetic_images])
    targets = None
    if teachers:
        targets, p_teacher = _distillation_targets(teachers, train_set + unlabelled, synthetic_images,
                                                   synthetic, distill_alpha, temperature, outputs)
    every_label = dataset.as_outputs(np.concatenate([y_train, np.full(len(unlabelled), -1),
                                                     np.array([s.label for s in synthetic], int)]),
                                     outputs)
    val_images, y_val, val_set = dataset.load_images(
        val_set, size, lambda it: progress(it, desc="decode val"))

    backbone = model_lib.build_backbone(size)
    weights.copy_weights_by_name(backbone, weights_file or weights.fetch_imagenet_weights())
    lower, upper = model_lib.split_backbone(backbone, first_tuned_block)
    plan = view_plan(train_set + unlabelled + synthetic, views)
    x_train = _features(lower, _augmented_views(train_images, plan, size, seed), desc="train features")
    del train_images, synthetic_images
    hard_views = np.argmax(targets, axis=1)[plan] if teachers else every_label[plan]
    y_views = targets[plan] if teachers else hard_views
    val_counts = dataset.class_counts(y_val)
    y_val = dataset.as_outputs(y_val, outputs)
    if teachers:
        y_val = np.eye(outputs, dtype=np.float32)[y_val]
    x_val = _features(lower, val_images, desc="val features")

    top = model_lib.build_top(outputs)
    head = model_lib.build_head_model(upper, top)
    cls_weights = class_weights(hard_views, outputs)
    model_lib.set_fine_tuning(upper, False)
    log.info("phase 1: the top on the pooled output of the frozen backbone")
    pooled_model = model_lib.build_pooled_model(upper)
    history1 = _fit(top, _pooled(pooled_model, x_train, desc="train pooled"), y_views,
                    _pooled(pooled_model, x_val, desc="val pooled"), y_val, head_lr, head_epochs,
                    patience, os.path.join(out_dir, "best_top.weights.h5"), cls_weights, batch)
    model_lib.set_fine_tuning(upper, True)
    log.info("phase 2: blocks %d-16 fine-tuned at learning rate %g", first_tuned_block, tune_lr)
    history2 = _fit(head, x_train, y_views, x_val, y_val, tune_lr, tune_epochs, patience,
                    os.path.join(out_dir, "best.weights.h5"), cls_weights, batch)

    export = model_lib.build_export_model(lower, head, size)
    export.save(run_folder.path(out_dir, run_folder.KERAS_MODEL))
    plot_training_curves(history1, history2, run_folder.path(out_dir, run_folder.TRAINING_CURVES))
    summary = {
        "size": size,
        "roots": [os.path.abspath(r) for r in roots],
        "seed": seed,
        "val_fraction": val_fraction,
        "augmented_views": views,
        "view_boost": FOLDER_VIEW_BOOST,
        "first_tuned_block": first_tuned_block,
        "learning_rates": {"head": head_lr, "fine_tune": tune_lr},
        "outputs": outputs,
        "counts": {"train": dataset.class_counts(y_train), "val": val_counts},
        "data_fingerprint": dataset.fingerprint(train_set + val_set),
        "class_weights": cls_weights,
        **{folder: sum(s.folder == folder for s in synthetic)
           for _, folder in SYNTHETIC_TWINS.values()},
        "epochs": {"head": len(history1["loss"]), "fine_tune": len(history2["loss"])},
        "history": {"head": history1, "fine_tune": history2},
        "seconds": round(time.time() - started, 1),
    }
    if teachers:
        unlabelled_p = p_teacher[len(train_set):len(train_set) + len(unlabelled)]
        summary["distillation"] = {
            "teachers": [run_folder.portable_path(os.path.abspath(t)) for t in teachers],
            "teacher_sizes": [distill.teacher_input_size(t) for t in teachers],
            "alpha": distill_alpha,
            "temperature": temperature, "unlabelled_faces": len(unlabelled),
            "unlabelled_roots": [run_folder.portable_path(os.path.abspath(r)) for r in unlabelled_roots],
            "teacher_no_mask_share": {"labelled": float(np.mean(p_teacher[:len(train_set)] >= 0.5)),
                                      "unlabelled": float(np.mean(unlabelled_p >= 0.5))
                                      if unlabelled else None}}
    with open(run_folder.path(out_dir, run_folder.TRAIN_SUMMARY), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1)
    with open(run_folder.path(out_dir, run_folder.SPLIT), "w", encoding="utf-8") as handle:
        json.dump({"train": [[s.path, s.label] for s in train_set],
                   "val": [[s.path, s.label] for s in val_set]}, handle)
    log.info("training done in %.0f s: %s", summary["seconds"], out_dir)
    return summary
