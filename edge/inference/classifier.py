"""The mask classifier: face crops -> label and score from the model's metadata.

Scores are on one scale whatever the model: the model's P(no mask) with its log-odds moved so
that the threshold chosen on its validation set is 0.5, and multiplied by the factor that makes
them as confident as the model proved on that set (`no_mask_score`). A label's score is then
above 0.5, and the decision band, the live view and the events read the same numbers for every
model (a model whose threshold is 0.24 would otherwise call a face `no_mask` at 0.3, and a
distilled model, whose scores are softer than its teacher's, would leave more people undecided).

On the CPU the faces of a frame go through the model in one invoke (its input resized to the
number of faces, at most MAX_BATCH at a time); on the Edge TPU, whose compiled model is static,
one invoke per face.

A model published with a second opinion (the metadata's `second_opinion`) asks a second model,
one invoke per face, about the few faces whose P(no mask) lies in a band around the first's
threshold; those are decided by the mean of the two P(no mask), on the second opinion's own
threshold and score scale. Both were chosen on the validation set (`convert/cascade.py`). The
second model runs on the CPU (about one face in ten): compiled apart from the first, the two
would evict each other's parameters from the Edge TPU's cache on every face asked.
"""
import logging
import math
from dataclasses import dataclass, replace
from typing import Optional

import cv2
import numpy as np

from edge.inference import tensors
from edge.errors import DataError, ModelError
from edge.inference.model_meta import load_classifier_meta, sha256_of
from edge.inference.preprocess import crop_face, resize_square
from edge.inference.accelerator import AcceleratedModel, AcceleratorSettings
from edge.inference.runtime import open_interpreter

log = logging.getLogger(__name__)

# Faces per CPU invoke at most; more are split. The activations grow with the batch (the 224 px
# MobileNetV2 takes about 20 MB more at 8 faces than at 1) while the cost per face is about flat
# past 4 faces (BENCHMARKS.md, the classifier's batches).
MAX_BATCH = 8
# Runtimes whose int8 batches failed here: {runtime name: why}; they classify face by face.
NO_BATCHES = {}


SCORE_EPSILON = 1e-6  # an int8 model says 0 or 1 exactly; their log-odds are kept finite


def _logit(p):
    return math.log(p / (1.0 - p))


def no_mask_score(no_mask_probability, threshold, scale=1.0):
    """P(no mask) re-centred on the model's threshold and its log-odds scaled by `scale` (the
    metadata's `score_scale`): the same for every face, so the order of faces is kept, the
    threshold maps to 0.5 and the ends stay at the ends."""
    p = min(max(float(no_mask_probability), SCORE_EPSILON), 1.0 - SCORE_EPSILON)
    t = min(max(float(threshold), SCORE_EPSILON), 1.0 - SCORE_EPSILON)
    return 1.0 / (1.0 + math.exp(-scale * (_logit(p) - _logit(t))))


# The label of a model that tells a mask worn below the nose from a bare face (convert/dataset).
BELOW_NOSE = "mask_below_nose"


def no_mask_kind(label, below_nose):
    """The kind of no mask of a face labelled `label` whose share of a mask below the nose is
    `below_nose`: `mask_below_nose` from one half up, else `no_mask` (a bare face); None for a
    face not called no_mask or from a model that does not tell the kinds apart."""
    if label != "no_mask" or below_nose is None:
        return None
    return BELOW_NOSE if below_nose >= 0.5 else "no_mask"


@dataclass(frozen=True)
class Classification:
    """A face's label (`mask` / `no_mask`), the score of that label (at least 0.5), the no-mask
    score it came from (0.5 = the model's threshold), the model's own P(no mask) (a pair's: the
    mean of both models where the second was asked) and, from a model that tells them apart, the
    share of it that is a mask worn below the nose."""

    label: str
    score: float
    no_mask_score: float
    no_mask_probability: float
    below_nose: Optional[float] = None

    @property
    def kind(self):
        """`mask_below_nose` / `no_mask` for a face called no_mask by a model that tells the
        kinds apart, else None (`no_mask_kind`)."""
        return no_mask_kind(self.label, self.below_nose)


class MaskClassifier:
    """An int8 MobileNetV2 mask / no-mask classifier opened once: one invoke per frame's faces on
    the CPU, one per face on the Edge TPU."""

    def __init__(self, meta, interpreter, second=None):
        self.meta = meta
        self.interpreter = interpreter  # an AcceleratedModel: the Edge TPU or its CPU twin
        self.second = second  # the second opinion's AcceleratedModel, or None
        self._batch = None  # the CPU interpreter of frames with several faces, opened when needed
        _check_model(interpreter, meta.model_path, meta.input_size, meta)
        if (second is None) != (meta.second_opinion is None):
            raise ModelError(f"{meta.path}: a second opinion needs its model and its metadata")
        if second is not None:
            _check_model(second, meta.second_model_path, meta.second_opinion.input_size, meta)

    @classmethod
    def open(cls, meta_path, accelerator=AcceleratorSettings(), runtime=None, verify_sha256=True):
        """Open the classifier described by a metadata file (checks each CPU model's sha256).

        With accelerator `auto` an `_edgetpu.tflite` twin beside the model is used when present;
        a second opinion runs on the CPU, whatever the mode."""
        meta = load_classifier_meta(meta_path)
        opinion = meta.second_opinion
        if verify_sha256:
            _verify_sha256(meta.model_path, meta.sha256, meta.path)
            if opinion is not None:
                _verify_sha256(meta.second_model_path, opinion.sha256, meta.path)
        model = AcceleratedModel(meta.model_path, accelerator, runtime)
        second = None
        if opinion is not None:  # on the CPU: see the class docstring
            second = AcceleratedModel(meta.second_model_path,
                                      replace(accelerator, mode="cpu", require=False), runtime)
        return cls(meta, model, second)

    @property
    def placement(self):
        """Where the classifier runs now (`edgetpu` / `cpu`) and why."""
        return self.interpreter.placement

    def no_mask_probability(self, face_rgb):
        """P(no mask) for a face crop (any size, RGB uint8): the first model's, or the mean of
        both where the second opinion is asked."""
        return self.classify(face_rgb).no_mask_probability

    def _scores(self, pixels_rgb, interpreter=None):
        """A model's output for one input: a score per label of the metadata."""
        return tensors.run_image(interpreter or self.interpreter, pixels_rgb, self.meta.mean,
                                 self.meta.std)

    def read_scores(self, scores):
        """(P(no mask), the share of it on a mask below the nose or None) of a row of scores:
        P(no mask) is the sum of the no-mask labels' scores, so a two-class model reads its
        `no_mask` output alone, and the share is None where the model has no such label."""
        values = [float(scores[i]) for i in self.meta.no_mask_indices]
        total = sum(values)
        p = min(total, 1.0)  # int8 scores may add up to a step above one
        if BELOW_NOSE not in self.meta.no_mask_labels:
            return p, None
        below = values[self.meta.no_mask_labels.index(BELOW_NOSE)]
        return p, (below / total if total > 0 else 0.0)

    def decide(self, no_mask_probability, below_nose=None):
        """Apply the metadata's threshold to a P(no mask) of the first model alone: the label
        and its re-centred score (`below_nose`: the share of a mask below the nose, kept as
        given). A pair's faces in the band are decided in `_answer`."""
        score = no_mask_score(no_mask_probability, self.meta.threshold, self.meta.score_scale)
        if no_mask_probability >= self.meta.threshold:
            return Classification("no_mask", score, score, no_mask_probability, below_nose)
        return Classification("mask", 1.0 - score, score, no_mask_probability, below_nose)

    def _answer(self, scores, face_at):
        """The Classification of one row of the first model's scores; `face_at(size)` gives the
        face as the second opinion's input when the first is unsure of it."""
        p, below = self.read_scores(scores)
        opinion = self.meta.second_opinion
        if opinion is None or not opinion.asks(p):
            return self.decide(p, below)
        second = self.read_scores(self._scores(face_at(opinion.input_size), self.second))[0]
        mean = (p + second) / 2.0
        score = no_mask_score(mean, opinion.threshold, opinion.score_scale)
        label = "no_mask" if mean >= opinion.threshold else "mask"
        return Classification(label, score if label == "no_mask" else 1.0 - score, score, mean,
                              below)

    def classify(self, face_rgb):
        """Label and score of one face crop."""
        def face_at(size):
            return resize_square(face_rgb, size)

        return self._answer(self._scores(face_at(self.meta.input_size)), face_at)

    def classify_box(self, frame_bgr, box):
        """Label and score of the face at `box` in a BGR frame (one invoke, two where the
        second opinion is asked)."""
        return self._answer(self._scores(self._face_input(frame_bgr, box)),
                            lambda size: self._face_input(frame_bgr, box, size))

    def classify_boxes(self, frame_bgr, boxes):
        """Label and score of each face box of a BGR frame, in order, as `classify_box` gives
        them; a face that cannot be cropped is its DataError instead, the others are classified.
        On the CPU all faces go in one invoke; on the Edge TPU one invoke per face."""
        inputs = []
        for box in boxes:
            try:
                inputs.append(self._face_input(frame_bgr, box))
            except DataError as exc:
                inputs.append(exc)
        rows = iter(self._outputs([p for p in inputs if not isinstance(p, DataError)]))
        return [p if isinstance(p, DataError) else
                self._answer(next(rows), lambda size, box=box: self._face_input(frame_bgr, box, size))
                for p, box in zip(inputs, boxes)]

    def _face_input(self, frame_bgr, box, size=None):
        """A model's input for the face at `box`, framed as in training (resized first, then
        turned to RGB: the same pixels, and the colour swap on the small image); `size`: the
        first model's when not given."""
        crop = resize_square(crop_face(frame_bgr, box, self.meta.crop_margin),
                             size or self.meta.input_size)
        return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)

    def _outputs(self, inputs):
        """The scores of each input: through the model one by one while `_alone` says so, the
        rest in CPU batches."""
        done = []
        while len(done) < len(inputs) and self._alone(len(done), len(inputs) - len(done)):
            done.append(self._scores(inputs[len(done)]))
        return done + self._batched(inputs[len(done):])

    def _alone(self, done, left):
        """Whether the next face goes through the model by itself: the last one (a batch of one
        is the model's own shape), every face while the model is on the Edge TPU (a fallback in
        the middle of a frame sends the rest to the CPU batch), and the first face of a frame
        while the model waits to go back to the Edge TPU (its invoke moves the retry on)."""
        if left == 1:
            return True
        placement = self.interpreter.placement
        if placement.accelerator == "edgetpu":
            return True
        return done == 0 and placement.reason is not None

    def _batched(self, inputs):
        """The scores of each input, MAX_BATCH per invoke of the CPU batch interpreter; one by
        one through the model where this runtime's batches fail."""
        batch = self._batch_interpreter() if inputs else None
        if batch is None:
            return [self._scores(p) for p in inputs]
        out = []
        for start in range(0, len(inputs), MAX_BATCH):
            chunk = inputs[start:start + MAX_BATCH]
            try:
                scores = tensors.run_images(batch, chunk, self.meta.mean, self.meta.std)
            except (ValueError, RuntimeError) as exc:
                self._refuse_batches(exc)
                return out + [self._scores(p) for p in inputs[start:]]
            out += list(scores)
        return out

    def _batch_interpreter(self):
        """The CPU twin opened a second time, its input resized per frame, checked once against
        single invokes; None where batches fail with this runtime. One interpreter resized when
        the number of faces changes (0.03 to 0.2 ms here once its arena is grown), not one per
        batch size (about 12 MB each, and their activations)."""
        if self.interpreter.runtime.name in NO_BATCHES:
            self._batch = None
            return None
        if self._batch is None:
            try:
                batch = open_interpreter(self.interpreter.cpu_path, self.interpreter.runtime,
                                         self.interpreter.num_threads)
                check_batches(batch, self.meta.input_size, self.meta.mean, self.meta.std)
            except (ModelError, ValueError, RuntimeError) as exc:
                self._refuse_batches(exc)
                return None
            self._batch = batch
        return self._batch

    def _refuse_batches(self, cause):
        """Classify face by face from now on with this runtime; said once per runtime."""
        name = self.interpreter.runtime.name
        self._batch = None
        if name not in NO_BATCHES:
            NO_BATCHES[name] = str(cause)
            log.warning("%s cannot run the classifier on several faces in one invoke (%s): one "
                        "invoke per face", name, cause)


def check_batches(interpreter, size, mean, std):
    """ModelError unless a batch of two images gives each image's scores as two single invokes
    do (to one quantization step): a runtime may accept a batch and still get it wrong."""
    images = list(np.random.default_rng(0).integers(0, 256, (2, size, size, 3), np.uint8))
    alone = np.concatenate([tensors.run_images(interpreter, [image], mean, std) for image in images])
    together = tensors.run_images(interpreter, images, mean, std)
    step = tensors.output_step(interpreter.get_output_details()[0])
    if together.shape != alone.shape or not np.allclose(together, alone, rtol=0, atol=step):
        raise ModelError(f"a batch of two gave {together.tolist()} where single invokes gave "
                         f"{alone.tolist()}")


def _check_model(interpreter, model_path, size, meta):
    """ModelError unless a model takes `size` px faces and gives a score per label of `meta`."""
    try:
        height, width = tensors.input_size(interpreter)
    except ModelError as exc:
        raise ModelError(f"{model_path}: {exc}") from exc
    if (height, width) != (size, size):
        raise ModelError(f"{model_path} takes {width}x{height} images but its metadata "
                         f"{meta.path} says {size}: the two files do not belong together")
    outputs = interpreter.get_output_details()
    classes = int(outputs[0]["shape"][-1]) if outputs else 0
    if len(outputs) != 1 or classes != len(meta.labels):
        raise ModelError(f"{model_path} gives {classes} scores per face but its metadata "
                         f"{meta.path} names {len(meta.labels)} labels {list(meta.labels)}: it "
                         "is not a mask classifier of this metadata; use a model made by "
                         "`maskdet-convert quantize`")


def _verify_sha256(model_path, sha256, meta_path):
    """ModelError unless the model file's sha256 is the one its metadata records."""
    if sha256_of_existing(model_path) != sha256:
        raise ModelError(f"{model_path} does not match the sha256 in {meta_path}: the model was "
                         "replaced or damaged; re-run `maskdet-convert quantize` (or `publish`)")


def sha256_of_existing(path):
    """sha256 of a model file, or ModelError when it is missing."""
    try:
        return sha256_of(path)
    except FileNotFoundError:
        raise ModelError(f"model file {path} does not exist") from None


def as_rgb(image_bgr):
    """OpenCV's BGR image -> RGB (a new array)."""
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
