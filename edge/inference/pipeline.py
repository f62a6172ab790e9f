"""One frame through the inference core: find faces, classify each, time each stage.

`build_pipeline` is the one way to make a pipeline: the daemon, `maskdet detect` and the bench all
call it with the same three settings objects.
"""
import logging
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from edge.errors import DataError
from edge.inference.accelerator import AcceleratorSettings
from edge.inference.classifier import MaskClassifier, no_mask_kind
from edge.inference.detectors import DetectorSettings, create_detector
from edge.inference.edgetpu_worker import EdgeTpuHosts
from edge.paths import default_classifier
from edge.settings import in_range, setting

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
SCORE_DECIMALS = 4  # scores in `detect` / `classify` JSON; text shows them as `97.3%`


def json_score(score):
    """A score as JSON carries it: rounded to SCORE_DECIMALS, or None (an `unknown` face)."""
    return None if score is None else round(float(score), SCORE_DECIMALS)


@dataclass(frozen=True)
class ClassifierSettings:
    """The mask classifier and which faces it is asked about."""

    model: Optional[str] = setting(None, "metadata JSON of the classifier (null: the shipped "
                                   "models/mask_classifier.json)")
    # 40, by `maskdet bench --decisions`: from 40 px up the faces of the held-out scenes are
    # right 0.964 (balanced), from 32 px 0.947 (BENCHMARKS.md, decisions on hard faces).
    min_face_size: int = setting(40, "faces whose box is smaller than this many pixels (shorter "
                                 "side) are `unknown`, not guessed", in_range(8, 1000))


@dataclass(frozen=True)
class FaceResult:
    """A face in a frame: box in pixels, `mask` / `no_mask` / `unknown`, scores; an `unknown`
    face has no score and says why it was not classified."""

    box: tuple
    label: str
    score: Optional[float]
    face_score: float
    reason: Optional[str] = None
    partial: bool = False  # the box touches or crosses the frame's edge: part of the face is cut
    # of P(no mask), the share on a mask worn below the nose (a model that tells it; else None)
    below_nose: Optional[float] = None

    @property
    def no_mask_score(self):
        """The classifier's no-mask score (0.5 at the model's threshold) that the label and its
        score came from; None for an `unknown` face."""
        if self.score is None:
            return None
        return self.score if self.label == "no_mask" else 1.0 - self.score

    @property
    def kind(self):
        """`mask_below_nose` / `no_mask` for a face called no_mask by a model that tells the
        kinds apart, else None (`classifier.no_mask_kind`)."""
        return no_mask_kind(self.label, self.below_nose)

    def as_dict(self):
        """The JSON form of DESIGN.md (`box` in whole pixels, scores to 4 decimals); an `unknown`
        face has `score: null` and a `reason`; a face cut by the frame's edge has `partial: true`;
        a `no_mask` face from a model that tells the kinds apart has its `kind`."""
        out = {"box": [int(round(v)) for v in self.box], "label": self.label,
               "score": json_score(self.score), "face_score": json_score(self.face_score)}
        if self.reason:
            out["reason"] = self.reason
        if self.partial:
            out["partial"] = True
        if self.kind is not None:
            out["kind"] = self.kind
        return out


# A box within this many pixels of the frame's edge is taken as cut by it.
EDGE_MARGIN_PX = 2


def is_partial(box, frame_shape, margin=EDGE_MARGIN_PX):
    """True when a [x1, y1, x2, y2] box touches or crosses the edge of a frame of `frame_shape`
    (height, width, ...): the face may be cut, and what shows of it can mislead."""
    height, width = frame_shape[:2]
    x1, y1, x2, y2 = box
    return x1 <= margin or y1 <= margin or x2 >= width - margin or y2 >= height - margin


@dataclass
class FrameResult:
    """All faces of one frame and the milliseconds each stage took."""

    faces: list
    timings_ms: dict = field(default_factory=dict)


class FaceMaskPipeline:
    """Detector + classifier; faces smaller than `min_face_size` px are `unknown`, not guessed."""

    def __init__(self, detector, classifier, min_face_size=ClassifierSettings().min_face_size,
                 tpu_hosts=None):
        self.detector = detector
        self.classifier = classifier
        self.min_face_size = min_face_size
        self.tpu_hosts = tpu_hosts  # the Edge TPU worker processes of these models (if any)

    def close(self):
        """Stop the Edge TPU worker processes of this pipeline (before a new pipeline wants the
        device, and at shutdown); the models then run on the CPU. Safe to call twice."""
        if self.tpu_hosts is not None:
            self.tpu_hosts.close()

    def release_edgetpu(self, reason):
        """Let a new pipeline open the Edge TPU (a reload): these models go on on the CPU and try
        the device again later, which matters only if the new pipeline is not taken."""
        if self.tpu_hosts is not None:
            self.tpu_hosts.release(reason)

    def accelerator_counters(self):
        """{model file name: AcceleratedModel.counters()} of each model that wants the Edge TPU."""
        return self.tpu_hosts.model_counters() if self.tpu_hosts is not None else {}

    def placements(self):
        """Where each model runs now and why: {"detector": Placement, "classifier": Placement}."""
        return {"detector": self.detector.placement, "classifier": self.classifier.placement}

    def analyze(self, frame_bgr):
        """Faces of one BGR frame with their labels, and stage timings (detect, classify)."""
        start = time.perf_counter()
        faces = self.detect(frame_bgr)
        detected = time.perf_counter()
        results = self.classify(frame_bgr, faces)
        done = time.perf_counter()
        return FrameResult(results, {"detect": (detected - start) * 1000.0,
                                     "classify": (done - detected) * 1000.0})

    def warm_up(self):
        """Run every model once as the frame loop will, before the first real frame: the
        detector on a blank frame and the classifier on two faces (which opens its CPU batch
        interpreter, about 30 ms here, so that the first frame with two people at the door does
        not pay it)."""
        blank = np.zeros((360, 640, 3), np.uint8)
        self.detect(blank)
        self.classifier.classify_boxes(blank, [(100, 100, 200, 220), (400, 100, 500, 220)])

    def detect(self, frame_bgr):
        """The faces (`geometry.Face`) of one BGR frame, not yet classified."""
        return self.detector.detect(frame_bgr)

    def classify(self, frame_bgr, faces):
        """A FaceResult for each of `faces` (in order): classified, or `unknown` with the reason
        (too small, cannot be cropped); one face's fault never costs the others. The faces big
        enough go to the classifier together (one invoke on the CPU)."""
        wanted = [i for i, face in enumerate(faces) if face.size >= self.min_face_size]
        boxes = [faces[i].box for i in wanted]
        answers = dict(zip(wanted, self.classifier.classify_boxes(frame_bgr, boxes) if boxes else []))
        return [self._result(frame_bgr, face, answers.get(i)) for i, face in enumerate(faces)]

    def unclassified(self, frame_bgr, face, reason):
        """The FaceResult of a face deliberately not classified (e.g. a person already decided):
        `unknown`, with the reason."""
        return FaceResult(face.box, UNKNOWN, None, face.score, reason,
                          is_partial(face.box, frame_bgr.shape))

    def _result(self, frame_bgr, face, answer):
        """The FaceResult of a face from the classifier's answer (None: too small to ask)."""
        partial = is_partial(face.box, frame_bgr.shape)
        if answer is None:
            return FaceResult(face.box, UNKNOWN, None, face.score,
                              f"smaller than {self.min_face_size} px ({face.size:.0f} px)", partial)
        if isinstance(answer, DataError):
            log.debug("face %s not classified: %s", face.box, answer)
            return FaceResult(face.box, UNKNOWN, None, face.score, str(answer), partial)
        return FaceResult(face.box, answer.label, answer.score, face.score, partial=partial,
                          below_nose=answer.below_nose)


def build_pipeline(detector=DetectorSettings(), classifier=ClassifierSettings(),
                   accelerator=AcceleratorSettings(), runtime=None):
    """The inference core the settings describe (models loaded, accelerator chosen). `runtime`
    (a `Runtime`) picks the classifier's TFLite runtime; None: the first installed. Models on
    the Edge TPU share one worker process per device, which the pipeline's `close` stops."""
    tpu_hosts = EdgeTpuHosts()
    try:
        with tpu_hosts.shared():
            face_detector = create_detector(detector, accelerator)
            mask_classifier = MaskClassifier.open(classifier.model or default_classifier(),
                                                  accelerator, runtime)
    except BaseException:
        tpu_hosts.close()
        raise
    return FaceMaskPipeline(face_detector, mask_classifier, classifier.min_face_size, tpu_hosts)
