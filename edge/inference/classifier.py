"""The mask classifier: one invoke per face crop, label and score from the model's metadata."""
import logging
from dataclasses import dataclass

import cv2

from edge.inference import tensors
from edge.errors import ModelError
from edge.inference.model_meta import load_classifier_meta, sha256_of
from edge.inference.preprocess import crop_face, resize_square
from edge.inference.accelerator import AcceleratedModel, AcceleratorSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Classification:
    """A face's label (`mask` / `no_mask`) and the probability of that label."""

    label: str
    score: float
    no_mask_probability: float


class MaskClassifier:
    """An int8 MobileNetV2 mask / no-mask classifier opened once and invoked per face."""

    def __init__(self, meta, interpreter):
        self.meta = meta
        self.interpreter = interpreter
        try:
            height, width = tensors.input_size(interpreter)
        except ModelError as exc:
            raise ModelError(f"{meta.model_path}: {exc}") from exc
        if (height, width) != (meta.input_size, meta.input_size):
            raise ModelError(f"{meta.model_path} takes {width}x{height} images but its metadata "
                             f"{meta.path} says {meta.input_size}: the two files do not belong "
                             "together")
        outputs = interpreter.get_output_details()
        classes = int(outputs[0]["shape"][-1]) if outputs else 0
        if len(outputs) != 1 or classes != len(meta.labels):
            raise ModelError(f"{meta.model_path} gives {classes} scores per face but its metadata "
                             f"{meta.path} names {len(meta.labels)} labels {list(meta.labels)}: it "
                             "is not a mask classifier of this metadata; use a model made by "
                             "`maskdet-convert quantize`")

    @classmethod
    def open(cls, meta_path, accelerator=AcceleratorSettings(), runtime=None, verify_sha256=True):
        """Open the classifier described by a metadata file (checks the CPU model's sha256).

        With accelerator `auto` an `_edgetpu.tflite` twin beside the model is used when present."""
        meta = load_classifier_meta(meta_path)
        if verify_sha256 and sha256_of_existing(meta.model_path) != meta.sha256:
            raise ModelError(f"{meta.model_path} does not match the sha256 in {meta.path}: the "
                             "model was replaced or damaged; re-run `maskdet-convert quantize`")
        model = AcceleratedModel(meta.model_path, accelerator, runtime)
        return cls(meta, model)

    @property
    def placement(self):
        """Where the classifier runs now (`edgetpu` / `cpu`) and why."""
        return self.interpreter.placement

    def no_mask_probability(self, face_rgb):
        """P(no mask) for a face crop (any size, RGB uint8)."""
        return self._probability(resize_square(face_rgb, self.meta.input_size))

    def _probability(self, pixels_rgb):
        scores = tensors.run_image(self.interpreter, pixels_rgb, self.meta.mean, self.meta.std)
        return float(scores[self.meta.positive_index])

    def decide(self, no_mask_probability):
        """Apply the metadata's threshold to a P(no mask)."""
        if no_mask_probability >= self.meta.threshold:
            return Classification("no_mask", no_mask_probability, no_mask_probability)
        return Classification("mask", 1.0 - no_mask_probability, no_mask_probability)

    def classify(self, face_rgb):
        """Label and score of one face crop."""
        return self.decide(self.no_mask_probability(face_rgb))

    def classify_box(self, frame_bgr, box):
        """Label and score of the face at `box` in a BGR frame, framed as in training (resized
        first, then turned to RGB: the same pixels, and the colour swap on the small image)."""
        crop = resize_square(crop_face(frame_bgr, box, self.meta.crop_margin), self.meta.input_size)
        return self.decide(self._probability(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)))


def sha256_of_existing(path):
    """sha256 of a model file, or ModelError when it is missing."""
    try:
        return sha256_of(path)
    except FileNotFoundError:
        raise ModelError(f"model file {path} does not exist") from None


def as_rgb(image_bgr):
    """OpenCV's BGR image -> RGB (a new array)."""
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
