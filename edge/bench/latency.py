"""Per-stage latency of the inference core (decode, detect, crop + classify, total) for each
detector backend and TFLite runtime, on one thread."""
import os
import time

import cv2
import numpy as np


def stats(values):
    """Median and p90 of a list of milliseconds."""
    values = np.asarray(values, dtype=np.float64)
    return {"median": round(float(np.median(values)), 3), "p90": round(float(np.percentile(values, 90)), 3)}


def measure_pipeline(pipeline, frames, warmup=3):
    """Time each stage over the frames; returns medians / p90s and the frames per second."""
    for _, frame, _ in frames[:warmup]:
        pipeline.analyze(frame)
    stages = {"decode": [], "detect": [], "classify": [], "total": []}
    faces = 0
    for _, frame, decode_ms in frames:
        start = time.perf_counter()
        result = pipeline.analyze(frame)
        elapsed = (time.perf_counter() - start) * 1000.0
        stages["decode"].append(decode_ms)
        stages["detect"].append(result.timings_ms["detect"])
        stages["classify"].append(result.timings_ms["classify"])
        stages["total"].append(decode_ms + elapsed)
        faces += len(result.faces)
    out = {stage: stats(v) for stage, v in stages.items()}
    return {"frames": len(frames), "faces": faces, "stages_ms": out,
            "fps": round(1000.0 / float(np.mean(stages["total"])), 2)}


def build_pipeline(detector_settings, classifier_meta, runtime_name, min_face=32):
    """A single-threaded pipeline on the named TFLite runtime."""
    from edge.inference.classifier import MaskClassifier
    from edge.inference.detectors import create_detector
    from edge.inference.pipeline import FaceMaskPipeline

    os.environ["MASKDET_RUNTIME"] = runtime_name
    cv2.setNumThreads(1)
    detector = create_detector(detector_settings, accelerator="cpu", num_threads=1)
    classifier = MaskClassifier.open(classifier_meta, accelerator="cpu", num_threads=1)
    return FaceMaskPipeline(detector, classifier, min_face)
