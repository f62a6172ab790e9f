"""The one place detectors plug in: each detector module registers one `DetectorType`, and the
config schema, the command line and the bench take their choices, defaults and help from here.

A new detector is one module with a class that has `name`, `placement` and `detect(frame_bgr)
-> [Face]`, plus one `register(DetectorType(...))` call at its end, and its import in
`edge/inference/detectors/__init__.py`.
"""
from dataclasses import dataclass
from typing import Callable, Optional

DETECTORS = {}


@dataclass(frozen=True)
class DetectorType:
    """One kind of face detector.

    `open(model_path, settings, accelerator)` returns the detector; `default_model` is a
    `maskdet models` key (`{variant}` filled from the settings), a shipped file
    (`{models}/name`: the models folder, $MASKDET_MODELS, when it is asked for) or None when the
    user must give a file; `score_threshold` and `detect_width` are the type's defaults."""

    name: str
    open: Callable
    default_model: Optional[str]
    score_threshold: float
    detect_width: int
    help: str
    extra_models: tuple = ()  # further `maskdet models` keys the type needs (res10's prototxt)


def register(detector_type):
    """Add a detector type to the registry (one call per detector module)."""
    DETECTORS[detector_type.name] = detector_type
    return detector_type


def detector_names():
    """The registered type names, in registration order."""
    return tuple(DETECTORS)


def describe_types():
    """One line per type for help texts: `yunet (threshold 0.7, width 480): ...`."""
    return "; ".join(f"{t.name}: {t.help} (threshold {t.score_threshold}, detect width "
                     f"{t.detect_width or 'full frame'})" for t in DETECTORS.values())
