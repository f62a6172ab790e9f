"""Per-stage latency of the inference core (decode, detect, crop + classify, total) for each
detector backend and TFLite runtime, on one thread."""
import time

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


def single_thread_pipeline(detector_settings, classifier_meta, runtime_name, min_face=32):
    """A pipeline on one CPU thread with the classifier on the named TFLite runtime."""
    from edge.inference.accelerator import AcceleratorSettings
    from edge.inference.pipeline import ClassifierSettings, build_pipeline
    from edge.inference.runtime import find_runtime

    return build_pipeline(detector_settings, ClassifierSettings(classifier_meta, min_face),
                          AcceleratorSettings(mode="cpu", threads=1), find_runtime(runtime_name))
