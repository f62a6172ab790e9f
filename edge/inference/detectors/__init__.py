"""Face detectors behind one interface, chosen by the config's `type` (plugins, as Frigate's).

Every detector has `name`, `placement` (where it runs) and `detect(frame_bgr) -> [Face]` with
boxes in frame pixels. The types and their defaults live in `registry.py`; each module below
registers itself when imported.
"""
from dataclasses import dataclass, replace
from typing import Optional

import cv2

from edge.errors import ConfigError
from edge.inference.accelerator import AcceleratorSettings
from edge.inference.detectors import blazeface, res10, ssd, yunet, yunet_int8  # noqa: F401  (registration)
from edge.inference.detectors.registry import DETECTORS, describe_types, detector_names
from edge.inference.fetch import resolve
from edge.inference.geometry import Face, shrink
from edge.paths import models_dir
from edge.settings import in_range, one_of, setting

DEFAULT_TYPE = "yunet"  # the default detector, chosen by `maskdet bench` (BENCHMARKS.md)


@dataclass(frozen=True)
class DetectorSettings:
    """Which face detector to run and how (`maskdet detect --help` lists the types)."""

    type: str = setting(DEFAULT_TYPE, "the detector: " + ", ".join(detector_names()),
                        one_of(*detector_names()))
    model: Optional[str] = setting(None, "model file or `maskdet models` key; null: the type's default")
    variant: str = setting("full", "blazeface: full (192 px, 1-5 m) or short (128 px, within 2 m)",
                           one_of("full", "short"))
    score_threshold: Optional[float] = setting(
        None, "detector confidence; null: the type's default (" +
        ", ".join(f"{t.name} {t.score_threshold}" for t in DETECTORS.values()) + ")",
        in_range(0.05, 0.99))
    detect_width: Optional[int] = setting(
        None, "shrink wider frames to this before detecting; 0: never; null: the type's default (" +
        ", ".join(f"{t.name} {t.detect_width}" for t in DETECTORS.values()) + ")", in_range(0, 8192))
    engine: str = setting("auto", "yunet: onnxruntime, opencv, or auto (onnxruntime when installed)",
                          one_of(*yunet.ENGINES))
    iou_threshold: float = setting(0.3, "overlap above which two boxes are one face (NMS)",
                                   in_range(0.05, 0.95))

    def resolved(self):
        """These settings with the type's defaults filled in."""
        kind = detector_type(self.type)
        return replace(self, score_threshold=kind.score_threshold if self.score_threshold is None
                       else self.score_threshold,
                       detect_width=kind.detect_width if self.detect_width is None else self.detect_width)


def detector_type(name):
    """The registered DetectorType of that name, or ConfigError listing the types."""
    if name not in DETECTORS:
        raise ConfigError(f"detector type {name!r} is not one of {', '.join(DETECTORS)}")
    return DETECTORS[name]


def default_model_key(settings):
    """The `maskdet models` key (or shipped file) of the settings' default model, or None (the
    type has none)."""
    key = detector_type(settings.type).default_model
    return key.format(variant=settings.variant, models=models_dir()) if key else None


class DownscaledDetector:
    """Runs a detector on a frame shrunk to at most `width` pixels wide and maps boxes back:
    detectors that work at the frame's resolution (YuNet, res10's aspect) get cheaper with it."""

    def __init__(self, detector, width):
        self.detector = detector
        self.width = width
        self.name = detector.name

    @property
    def placement(self):
        """Where the wrapped detector runs."""
        return self.detector.placement

    def detect(self, frame_bgr):
        """Faces in frame pixels."""
        height, width = frame_bgr.shape[:2]
        if width <= self.width:
            return self.detector.detect(frame_bgr)
        scale = self.width / width
        small = shrink(frame_bgr, self.width, max(1, round(height * scale)))
        return [Face(tuple(v / scale for v in f.box), f.score) for f in self.detector.detect(small)]


def create_detector(settings, accelerator=AcceleratorSettings()):
    """Open the detector the settings describe; model files resolved through `edge.inference.fetch`."""
    settings = settings.resolved()
    kind = detector_type(settings.type)
    model = settings.model or default_model_key(settings)
    if not model:
        raise ConfigError(f"detector type {kind.name} needs a model file: set detector.model "
                          "(or --detector-model)")
    path = resolve(model)
    cv2.setNumThreads(int(accelerator.threads))  # OpenCV's DNN module and its resizing
    detector = kind.open(path, settings, accelerator)
    return DownscaledDetector(detector, settings.detect_width) if settings.detect_width else detector


__all__ = ["DETECTORS", "DetectorSettings", "DownscaledDetector", "create_detector",
           "default_model_key", "describe_types", "detector_type"]
