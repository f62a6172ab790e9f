"""How well a face detector finds annotated faces: recall by face size, masked and unmasked
apart, unmatched detections, and latency per photo."""
import json
import os
import time

import numpy as np

from edge.inference.geometry import match_by_iou
from edge.inference.images import read_image

SIZE_BINS = ((0, 24), (24, 48), (48, 96), (96, 100000))
MATCH_IOU = 0.3  # detectors draw boxes of their own style (BlazeFace squarer than annotations)
GROUPS = {"with_mask": "masked", "without_mask": "unmasked", "mask_weared_incorrect": "masked"}


def bin_name(lo, hi):
    """`24-48 px` / `>= 96 px`."""
    return f">= {lo} px" if hi >= 100000 else f"{lo}-{hi} px"


def evaluate_detector(detector, annotations_path):
    """Recall per (group, size bin), unmatched detections and latency over an annotated set."""
    root = os.path.dirname(os.path.abspath(annotations_path))
    with open(annotations_path, encoding="utf-8") as handle:
        entries = json.load(handle)
    hits, totals, unmatched, times = {}, {}, 0, []
    for entry in entries:
        image = read_image(os.path.join(root, entry["image"]))
        start = time.perf_counter()
        faces = detector.detect(image)
        times.append((time.perf_counter() - start) * 1000.0)
        boxes = np.array([f["box"] for f in entry["faces"]], dtype=np.float64).reshape(-1, 4)
        assigned, extra = match_by_iou(boxes, [f.box for f in faces], [f.score for f in faces],
                                       MATCH_IOU)
        unmatched += extra
        for face, ok in zip(entry["faces"], assigned >= 0):
            x1, y1, x2, y2 = face["box"]
            side = min(x2 - x1, y2 - y1)
            bin_ = next(bin_name(lo, hi) for lo, hi in SIZE_BINS if lo <= side < hi)
            key = (GROUPS[face["label"]], bin_)
            totals[key] = totals.get(key, 0) + 1
            hits[key] = hits.get(key, 0) + int(ok)
    recall = {f"{g} {b}": {"found": hits[(g, b)], "faces": totals[(g, b)],
                           "recall": hits[(g, b)] / totals[(g, b)]} for g, b in sorted(totals)}
    return {"detector": detector.name, "images": len(entries), "recall": recall,
            "unmatched_detections": unmatched,
            "latency_ms": {"median": float(np.median(times)), "p90": float(np.percentile(times, 90))}}

