"""Face detectors behind one interface, chosen by the config's `type` (plugins, as Frigate's).

Every detector has `name` and `detect(frame_bgr) -> [Face]` with boxes in frame pixels.
"""
from dataclasses import dataclass

import cv2

from ..errors import ConfigError
from ..faces import Face, shrink
from ..fetch import resolve

DETECTOR_TYPES = ("blazeface", "ssd", "yunet", "res10")
DEFAULT_MODELS = {"blazeface": "blazeface_full", "yunet": "yunet",
                  "res10": "res10_caffemodel", "ssd": None}


@dataclass(frozen=True)
class DetectorSettings:
    """Which face detector to run and how."""

    # The defaults are the project's default detector, chosen by `maskdet bench` (BENCHMARKS.md).
    type: str = "yunet"
    model: str = None  # a local file or a `maskdet models` key; None: the type's default
    variant: str = "full"  # blazeface: full (192 px, 1-5 m) or short (128 px, within 2 m)
    score_threshold: float = 0.7
    iou_threshold: float = 0.3
    detect_width: int = 480  # frames wider than this are shrunk before detection (0: never)


class DownscaledDetector:
    """Runs a detector on a frame shrunk to at most `width` pixels wide and maps boxes back:
    detectors that work at the frame's resolution (YuNet, res10's aspect) get cheaper with it."""

    def __init__(self, detector, width):
        self.detector = detector
        self.width = width
        self.name = detector.name

    def detect(self, frame_bgr):
        """Faces in frame pixels."""
        height, width = frame_bgr.shape[:2]
        if width <= self.width:
            return self.detector.detect(frame_bgr)
        scale = self.width / width
        small = shrink(frame_bgr, self.width, max(1, round(height * scale)))
        return [Face(tuple(v / scale for v in f.box), f.score) for f in self.detector.detect(small)]


def create_detector(settings, accelerator="auto", device=None, require_accelerator=False,
                    num_threads=None, cache=None):
    """Open the detector the settings describe; model files resolved through `edge.fetch`."""
    detector = _create(settings, accelerator, device, require_accelerator, num_threads, cache)
    return DownscaledDetector(detector, settings.detect_width) if settings.detect_width else detector


def _create(settings, accelerator, device, require_accelerator, num_threads, cache):
    kind = settings.type
    if kind not in DETECTOR_TYPES:
        raise ConfigError(f"detector type {kind!r} is not one of {', '.join(DETECTOR_TYPES)}")
    model = settings.model or DEFAULT_MODELS[kind]
    if kind == "blazeface" and settings.model is None:
        model = f"blazeface_{settings.variant}"
    if model is None:
        raise ConfigError(f"detector type {kind} needs a model file: set detector.model")
    path = resolve(model, cache)
    if kind in ("yunet", "res10") and num_threads:
        cv2.setNumThreads(int(num_threads))
    if kind == "yunet":
        from .yunet import YuNetDetector

        return YuNetDetector(path, settings.score_threshold, settings.iou_threshold)
    if kind == "res10":
        from .res10 import Res10Detector

        return Res10Detector(resolve("res10_prototxt", cache), path, settings.score_threshold,
                             settings.iou_threshold)
    from ..accelerator import AcceleratedModel

    interpreter = AcceleratedModel(path, accelerator, device, require_accelerator, num_threads)
    if kind == "ssd":
        from .ssd import SsdDetector

        return SsdDetector(interpreter, settings.score_threshold)
    from .blazeface import BlazeFaceDetector

    return BlazeFaceDetector(interpreter, settings.variant, settings.score_threshold,
                             settings.iou_threshold)
