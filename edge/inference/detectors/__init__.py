"""Face detectors behind one interface, chosen by the config's `type` (plugins, as Frigate's).

Every detector has `name` and `detect(frame_bgr) -> [Face]` with boxes in frame pixels.
"""
from dataclasses import dataclass, replace

import cv2

from edge.errors import ConfigError
from edge.inference.geometry import Face, shrink
from edge.inference.fetch import resolve

DETECTOR_TYPES = ("blazeface", "ssd", "yunet", "res10")
# `maskdet models` keys of each type's default model ({variant}: blazeface's full / short).
DEFAULT_MODELS = {"blazeface": "blazeface_{variant}", "yunet": "yunet",
                  "res10": "res10_caffemodel", "ssd": None}
# Per type: (score threshold, detect width). YuNet works at the frame's resolution, so frames are
# shrunk for it; the others resize to their fixed input anyway. Measured in BENCHMARKS.md.
TYPE_DEFAULTS = {"yunet": (0.7, 480), "blazeface": (0.5, 0), "ssd": (0.5, 0), "res10": (0.5, 0)}


@dataclass(frozen=True)
class DetectorSettings:
    """Which face detector to run and how."""

    type: str = "yunet"  # the default detector, chosen by `maskdet bench` (BENCHMARKS.md)
    model: str = None  # a local file or a `maskdet models` key; None: the type's default
    variant: str = "full"  # blazeface: full (192 px, 1-5 m) or short (128 px, within 2 m)
    score_threshold: float = None  # None: the type's default
    iou_threshold: float = 0.3
    detect_width: int = None  # shrink wider frames to this before detection; 0: never; None: default
    engine: str = "auto"  # yunet: onnxruntime, opencv, or auto (onnxruntime when installed)

    def resolved(self):
        """These settings with the type's defaults filled in."""
        threshold, width = TYPE_DEFAULTS.get(self.type, (0.5, 0))
        return replace(self, score_threshold=threshold if self.score_threshold is None else self.score_threshold,
                       detect_width=width if self.detect_width is None else self.detect_width)


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
    """Open the detector the settings describe; model files resolved through `edge.inference.fetch`."""
    settings = settings.resolved()
    detector = _create(settings, accelerator, device, require_accelerator, num_threads, cache)
    return DownscaledDetector(detector, settings.detect_width) if settings.detect_width else detector


def _create(settings, accelerator, device, require_accelerator, num_threads, cache):
    kind = settings.type
    if kind not in DETECTOR_TYPES:
        raise ConfigError(f"detector type {kind!r} is not one of {', '.join(DETECTOR_TYPES)}")
    model = settings.model or (DEFAULT_MODELS[kind] or "").format(variant=settings.variant)
    if not model:
        raise ConfigError(f"detector type {kind} needs a model file: set detector.model")
    path = resolve(model, cache)
    if kind in ("yunet", "res10") and num_threads:  # OpenCV's DNN module and its resizing
        cv2.setNumThreads(int(num_threads))
    if kind == "yunet":
        from edge.inference.detectors.yunet import open_yunet

        return open_yunet(path, settings.engine, settings.score_threshold, settings.iou_threshold,
                          num_threads)
    if kind == "res10":
        from edge.inference.detectors.res10 import Res10Detector

        return Res10Detector(resolve("res10_prototxt", cache), path, settings.score_threshold,
                             settings.iou_threshold)
    from edge.inference.accelerator import AcceleratedModel

    interpreter = AcceleratedModel(path, accelerator, device, require_accelerator, num_threads)
    if kind == "ssd":
        from edge.inference.detectors.ssd import SsdDetector

        return SsdDetector(interpreter, settings.score_threshold)
    from edge.inference.detectors.blazeface import BlazeFaceDetector

    return BlazeFaceDetector(interpreter, settings.variant, settings.score_threshold,
                             settings.iou_threshold)
