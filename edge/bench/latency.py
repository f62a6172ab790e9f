"""Per-stage latency of the inference core (decode, detect, crop + classify, total) for each
detector backend and TFLite runtime, on one thread; and the classifier's cost per face with all
faces of a frame in one invoke against one invoke per face."""
import time

import numpy as np


def stats(values):
    """Median and p90 of a list of milliseconds."""
    values = np.asarray(values, dtype=np.float64)
    return {"median": round(float(np.median(values)), 3), "p90": round(float(np.percentile(values, 90)), 3)}


def measure_pipeline(pipeline, frames, warmup=3):
    """Time each stage over the frames; returns medians / p90s, the frames per second, and the
    faces found and classified (not `unknown`)."""
    for _, frame, _ in frames[:warmup]:
        pipeline.analyze(frame)
    stages = {"decode": [], "detect": [], "classify": [], "total": []}
    faces = classified = 0
    for _, frame, decode_ms in frames:
        start = time.perf_counter()
        result = pipeline.analyze(frame)
        elapsed = (time.perf_counter() - start) * 1000.0
        stages["decode"].append(decode_ms)
        stages["detect"].append(result.timings_ms["detect"])
        stages["classify"].append(result.timings_ms["classify"])
        stages["total"].append(decode_ms + elapsed)
        faces += len(result.faces)
        classified += sum(face.score is not None for face in result.faces)
    out = {stage: stats(v) for stage, v in stages.items()}
    return {"frames": len(frames), "faces": faces, "classified": classified, "stages_ms": out,
            "fps": round(1000.0 / float(np.mean(stages["total"])), 2)}


def single_thread_pipeline(detector_settings, classifier_meta, runtime_name, min_face=None):
    """A pipeline on one CPU thread with the classifier on the named TFLite runtime; faces under
    `min_face` px (None: the daemon's size gate) are not classified."""
    from edge.inference.accelerator import AcceleratorSettings
    from edge.inference.pipeline import ClassifierSettings, build_pipeline
    from edge.inference.runtime import find_runtime

    gate = ClassifierSettings().min_face_size if min_face is None else min_face
    return build_pipeline(detector_settings, ClassifierSettings(classifier_meta, gate),
                          AcceleratorSettings(mode="cpu", threads=1), find_runtime(runtime_name))


BATCH_SIZES = tuple(range(1, 9))
WAYS = ("batched", "one_by_one")  # all faces of a frame in one invoke; one invoke per face


def classifier_on(classifier_meta, runtime_name, threads):
    """The classifier on the CPU with `threads` TFLite threads and the named runtime."""
    from edge.inference.accelerator import AcceleratorSettings
    from edge.inference.classifier import MaskClassifier
    from edge.inference.runtime import find_runtime

    return MaskClassifier.open(classifier_meta, AcceleratorSettings(mode="cpu", threads=threads),
                               find_runtime(runtime_name))


def classify_costs(classifier, frame, boxes, sizes=BATCH_SIZES, repeats=10):
    """Milliseconds per face of the classify stage (crop, quantize, invoke, read) for N faces of
    a frame (`boxes` repeated as needed), each N of `sizes`: `batched` (`classify_boxes`) and
    `one_by_one` (`classify_box` per face); the median of `repeats`, the two ways interleaved."""
    out = {way: {} for way in WAYS}
    for n in sizes:
        chosen = [boxes[i % len(boxes)] for i in range(n)]
        ways = {"batched": lambda: classifier.classify_boxes(frame, chosen),
                "one_by_one": lambda: [classifier.classify_box(frame, box) for box in chosen]}
        times = {way: [] for way in WAYS}
        for run in ways.values():  # warm-up: the batch interpreter resized to n
            run()
        for _ in range(repeats):
            for way, run in ways.items():
                start = time.perf_counter()
                run()
                times[way].append((time.perf_counter() - start) * 1000.0 / n)
        for way in WAYS:
            out[way][str(n)] = round(float(np.median(times[way])), 3)
    return out
