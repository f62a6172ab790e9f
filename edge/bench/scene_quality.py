"""The whole inference core on annotated photos: are faces found, and labelled right?"""
import json
import os

import numpy as np

from edge.bench.detector_recall import MATCH_IOU
from edge.inference.geometry import match_by_iou
from edge.inference.images import read_image

LABELS = {"with_mask": "mask", "without_mask": "no_mask", "mask_weared_incorrect": "no_mask"}


def evaluate_pipeline(pipeline, annotations_path, min_side=48):
    """Detection recall of faces >= `min_side` px (masked / unmasked) and the balanced accuracy
    of the labels given to the matched faces."""
    root = os.path.dirname(os.path.abspath(annotations_path))
    with open(annotations_path, encoding="utf-8") as handle:
        entries = json.load(handle)
    found = {"mask": [0, 0], "no_mask": [0, 0]}
    correct = {"mask": [0, 0], "no_mask": [0, 0]}
    for entry in entries:
        big = [f for f in entry["faces"]
               if min(f["box"][2] - f["box"][0], f["box"][3] - f["box"][1]) >= min_side]
        if not big:
            continue
        result = pipeline.analyze(read_image(os.path.join(root, entry["image"])))
        boxes = np.array([f["box"] for f in big], dtype=np.float64)
        assigned, _ = match_by_iou(boxes, [f.box for f in result.faces],
                                   [f.face_score for f in result.faces], MATCH_IOU)
        for face, index in zip(big, assigned):
            truth = LABELS[face["label"]]
            found[truth][0] += int(index >= 0)
            found[truth][1] += 1
            label = result.faces[index].label if index >= 0 else "unknown"
            if label != "unknown":
                correct[truth][0] += int(label == truth)
                correct[truth][1] += 1
    recall = {k: v[0] / v[1] for k, v in found.items() if v[1]}
    accuracy = {k: v[0] / v[1] for k, v in correct.items() if v[1]}
    return {"min_side": min_side, "faces": {k: v[1] for k, v in found.items()},
            "recall": recall, "accuracy": accuracy,
            "balanced_accuracy": float(np.mean(list(accuracy.values()))) if accuracy else float("nan")}

