"""How well a face detector finds annotated faces: recall by face size, masked and unmasked
apart, unmatched detections, and latency per photo."""
import json
import os
import time

import numpy as np

from edge.inference.geometry import iou
from edge.inference.images import read_image

SIZE_BINS = ((0, 24), (24, 48), (48, 96), (96, 100000))
MATCH_IOU = 0.3  # detectors draw boxes of their own style (BlazeFace squarer than annotations)
GROUPS = {"with_mask": "masked", "without_mask": "unmasked", "mask_weared_incorrect": "masked"}


def bin_name(lo, hi):
    """`24-48 px` / `>= 96 px`."""
    return f">= {lo} px" if hi >= 100000 else f"{lo}-{hi} px"


def match(truth_boxes, detection_boxes, detection_scores, min_iou=MATCH_IOU):
    """Greedy IoU matching, best detections first: the index of the detection matched to each
    truth box (-1 when none, or below `min_iou`), and the number of detections that matched
    nothing."""
    truth_boxes = np.asarray(truth_boxes, dtype=np.float64).reshape(-1, 4)
    assigned = np.full(len(truth_boxes), -1, dtype=np.int64)
    for i in np.argsort(-np.asarray(detection_scores, dtype=np.float64), kind="stable"):
        if not len(truth_boxes):
            break
        overlaps = iou(detection_boxes[i], truth_boxes)
        overlaps[assigned >= 0] = 0.0
        best = int(np.argmax(overlaps))
        if overlaps[best] >= min_iou:
            assigned[best] = i
    return assigned, len(detection_boxes) - int(np.sum(assigned >= 0))


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
        assigned, extra = match(boxes, [f.box for f in faces], [f.score for f in faces])
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

