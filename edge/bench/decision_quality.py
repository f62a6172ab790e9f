"""Where the mask decisions go wrong on real held-out faces (issue 12): the classifier's accuracy
by the detector's box size (the size gate), the detector's recall against its false faces by
threshold, faces cut by the frame's edge, and how the decision band decides people, each with
the default it recommends and why (`decision_report` writes them: `maskdet bench --decisions`). The photos are
`data/scenes` and the held-out part of `data/scenes_more/ilc2021` (`convert.defaults`), which no
training step sees; the videos are `data/videos/*.mp4`.

YuNet runs once per photo at the lowest threshold measured and each threshold keeps the
detections scoring at or above it: greedy NMS only lets a box be suppressed by a higher-scoring
one, so this gives the same boxes as a run at that threshold.
"""
import json
import logging
import os
import sys
import time

import cv2
import numpy as np

from edge.bench.detector_recall import bin_name
from edge.bench.scene_quality import LABELS
from edge.inference.accelerator import AcceleratorSettings
from edge.inference.classifier import MaskClassifier
from edge.inference.detectors import DetectorSettings, create_detector
from edge.inference.geometry import Face, iou, match_by_iou
from edge.inference.images import read_image
from edge.inference.pipeline import ClassifierSettings, is_partial
from edge.paths import REPO_ROOT, shared_path
from edge.service.decision import DecisionSettings
from edge.service.tracker import Tracker

log = logging.getLogger(__name__)

KINDS = ("with_mask", "without_mask", "mask_weared_incorrect")
BIG = 100000  # the open upper end of the last bin
GATE_EDGES = (16, 20, 24, 28, 32, 40, 48, 64, 96)
GATE_BINS = ((0, 16),) + tuple(zip(GATE_EDGES, GATE_EDGES[1:] + (BIG,)))
RECALL_BINS = ((24, 48), (48, 96), (96, BIG))
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MATCH_IOU = 0.4
# The size gate's targets per kind (accuracy), and the fallback when bins hold too few faces.
TARGETS = {"with_mask": 0.98, "without_mask": 0.97}
BALANCED_TARGET = 0.95
# A bin of about 20 no-mask faces measures accuracy to about +-5 points (one standard error): a
# bin may fall that far under the target before it moves the gate, while the faces at and above
# the gate together must reach the target.
BIN_FLOOR = 0.92
MIN_BIN_FACES = 20
# The threshold's rule: no false face on the videos that lasts long enough to be decided, and
# at most this many more false faces big enough to be classified per photo than the default.
# At most one false face big enough to classify in ten photos: a fixed camera sees the same
# background in every frame, where a false face persists. An absolute ceiling, so that each run
# does not move the threshold on from the last one's.
FALSE_PER_PHOTO_CEILING = 0.1
CUT_BORDERS = ("top", "bottom", "left", "right")
CUT_FRACTIONS = (0.2, 0.35, 0.5)
CUT_MIN_SIDE = 48
PARTIAL_TOLERANCE = 0.01  # accuracy a cut may cost before partial faces must be skipped
VIDEO_STEP = 5
VIDEOS = ("one_masked.mp4", "one_unmasked.mp4", "putting_on_mask.mp4")
# Sampled frames with more than one real person in view, checked by eye: putting_on_mask.mp4
# opens on a split-screen interview (two people) until its cut at frame 15.
PEOPLE_IN_VIEW = {"putting_on_mask.mp4": (range(0, 15), 2)}
CPU_ONE_THREAD = AcceleratorSettings(mode="cpu", threads=1)


# --- boxes, bins, matching ---------------------------------------------------------------------

def shorter_side(box):
    """The shorter side of an [x1, y1, x2, y2] box in pixels."""
    return float(min(box[2] - box[0], box[3] - box[1]))


def size_bin(side, bins=GATE_BINS):
    """The name of the bin holding `side` (`24-28 px`, `>= 96 px`), None when no bin does."""
    return next((bin_name(lo, hi) for lo, hi in bins if lo <= side < hi), None)


def bin_names(bins=GATE_BINS):
    """The names of the bins, in order."""
    return [bin_name(lo, hi) for lo, hi in bins]


def match_boxes(truth_boxes, boxes, scores, min_iou=MATCH_IOU):
    """`geometry.match_by_iou` at IoU `min_iou` (this bench matches at 0.4): the index of the
    detection matched to each truth box (-1 when none), and how many detections matched nothing."""
    return match_by_iou(truth_boxes, boxes, scores, min_iou)


def cut_frame(image, box, border, fraction):
    """The photo cropped so that its `border` edge cuts `fraction` of the face box off, and the
    face's box in that frame, clipped to it as a detector's box is (it touches that edge)."""
    height, width = image.shape[:2]
    x1, y1 = max(0.0, float(box[0])), max(0.0, float(box[1]))
    x2, y2 = min(float(width), float(box[2])), min(float(height), float(box[3]))
    dx, dy = fraction * (x2 - x1), fraction * (y2 - y1)
    if border == "top":
        edge = int(round(y1 + dy))
        return np.ascontiguousarray(image[edge:]), (x1, 0.0, x2, y2 - edge)
    if border == "bottom":
        edge = int(round(y2 - dy))
        return np.ascontiguousarray(image[:edge]), (x1, y1, x2, float(edge))
    if border == "left":
        edge = int(round(x1 + dx))
        return np.ascontiguousarray(image[:, edge:]), (0.0, y1, x2 - edge, y2)
    if border == "right":
        edge = int(round(x2 - dx))
        return np.ascontiguousarray(image[:, :edge]), (x1, y1, float(edge), y2)
    raise ValueError(f"border {border!r} is not one of {', '.join(CUT_BORDERS)}")


# --- data --------------------------------------------------------------------------------------

def photo_sets():
    """[(set name, annotations path, image names to use or None for all)]: data/scenes and the
    held-out ilc2021 photos (masks below the nose), both never trained on."""
    from convert.defaults import held_out_scene_photos, real_world_annotations

    sets = [("scenes", real_world_annotations(), None)]
    return sets + [("ilc2021 held-out", path, names)
                   for path, names in sorted(held_out_scene_photos().items())]


def load_photos(sets, limit=None):
    """[(set name, image path, annotated faces)] of the sets, the first `limit` only when given."""
    photos = []
    for name, path, keep in sets:
        root = os.path.dirname(os.path.abspath(path))
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)
        photos += [(name, os.path.join(root, e["image"]), e["faces"]) for e in entries
                   if keep is None or e["image"] in keep]
    return photos[:limit] if limit else photos


def detections(detector, frame):
    """(boxes [N, 4], scores [N]) of the detector on a frame."""
    faces = detector.detect(frame)
    return (np.array([f.box for f in faces], dtype=np.float64).reshape(-1, 4),
            np.array([f.score for f in faces], dtype=np.float64))


def progress(items, desc):
    """`items` with progress on stderr: tqdm when installed, else a line every 10 %."""
    items = list(items)
    try:
        from tqdm import tqdm
    except ImportError:
        return _counted(items, desc)
    return tqdm(items, desc=desc, file=sys.stderr, mininterval=2.0, dynamic_ncols=True)


def _counted(items, desc):
    step = max(1, len(items) // 10)
    for i, item in enumerate(items, 1):
        yield item
        if i % step == 0 or i == len(items):
            print(f"{desc}: {i}/{len(items)}", file=sys.stderr, flush=True)


# --- one photo ---------------------------------------------------------------------------------

def gate_records(classifier, image, faces, boxes, scores, threshold, min_iou=MATCH_IOU):
    """One record per annotated face matched by a detection scoring >= `threshold`: the
    detector box's shorter side, the kind, and the classifier's verdict on that box (whatever
    its size)."""
    keep = scores >= threshold
    boxes, scores = boxes[keep], scores[keep]
    assigned, _ = match_boxes([f["box"] for f in faces], boxes, scores, min_iou)
    records = []
    for face, index in zip(faces, assigned):
        if index < 0:
            continue
        box = tuple(float(v) for v in boxes[index])
        verdict = classifier.classify_box(image, box)
        records.append({"kind": face["label"], "side": shorter_side(box),
                        "annotated_side": shorter_side(face["box"]),
                        "p_no_mask": round(verdict.no_mask_probability, 4),
                        "no_mask_score": round(verdict.no_mask_score, 4),
                        "below_nose": None if verdict.below_nose is None
                        else round(verdict.below_nose, 4),
                        "correct": verdict.label == LABELS[face["label"]],
                        "partial": bool(is_partial(box, image.shape))})
    return records


def cut_records(classifier, detector, image, faces, threshold, min_iou=MATCH_IOU):
    """For each annotated face >= CUT_MIN_SIDE px that the photo shows whole: its verdict uncut
    and cut at each border by each fraction (its clipped box classified as the Pi would), and
    whether YuNet still finds it in the cut frame."""
    records = []
    for face in faces:
        if shorter_side(face["box"]) < CUT_MIN_SIDE or is_partial(face["box"], image.shape):
            continue
        truth = LABELS[face["label"]]
        uncut = classifier.classify_box(image, face["box"]).label == truth
        for border in CUT_BORDERS:
            for fraction in CUT_FRACTIONS:
                frame, box = cut_frame(image, face["box"], border, fraction)
                boxes, scores = detections(detector, frame)
                keep = scores >= threshold
                found = bool(len(boxes[keep]) and np.max(iou(box, boxes[keep])) >= min_iou)
                records.append({"kind": face["label"], "border": border, "fraction": fraction,
                                "uncut_correct": uncut, "found": found,
                                "correct": classifier.classify_box(frame, box).label == truth})
    return records


# --- videos ------------------------------------------------------------------------------------

def video_detections(detector, path, step=VIDEO_STEP, limit=None):
    """[(frame index, boxes, scores)] of every `step`-th frame of a video (the first `limit`
    sampled frames only when given)."""
    capture = cv2.VideoCapture(path)
    sampled, index = [], 0
    try:
        while limit is None or len(sampled) < limit:
            if index % step:
                if not capture.grab():
                    break
            else:
                ok, frame = capture.read()
                if not ok:
                    break
                sampled.append((index, *detections(detector, frame)))
            index += 1
    finally:
        capture.release()
    return sampled


def false_faces(video_name, frames):
    """Per sampled frame, the detections that are no real person: all but the best-scoring one
    (two while PEOPLE_IN_VIEW says two are in view), as Faces."""
    frames_out = []
    special = PEOPLE_IN_VIEW.get(video_name)
    for index, boxes, scores in frames:
        people = special[1] if special and index in special[0] else 1
        order = np.argsort(-scores, kind="stable")[people:]
        frames_out.append([Face(tuple(boxes[i]), float(scores[i])) for i in order])
    return frames_out


def persistent_tracks(frames_faces, threshold, track_iou, min_frames):
    """The tracks (the daemon's Tracker, no frame missed) of the faces scoring >= `threshold`
    that last at least `min_frames` consecutive sampled frames."""
    tracker, done = Tracker(track_iou, max_misses=0), []
    for i, faces in enumerate(frames_faces):
        _, ended = tracker.update([f for f in faces if f.score >= threshold], float(i))
        done += ended
    return [t for t in done + tracker.tracks if t.hits >= min_frames]


def video_summary(videos, thresholds, min_face_size):
    """Per threshold: sampled frames, false faces per frame, and the false faces that persist
    long enough to be decided (and of those, the ones big enough to be classified)."""
    decision = DecisionSettings()
    fakes_of = {name: false_faces(name, sampled) for name, sampled in videos.items()}
    out = {}
    for t in thresholds:
        frames = false_count = 0
        persistent = []
        for fakes in fakes_of.values():
            frames += len(fakes)
            false_count += sum(f.score >= t for faces in fakes for f in faces)
            persistent += persistent_tracks(fakes, t, decision.track_iou, decision.min_frames)
        out[str(t)] = {"frames": frames, "false_faces": int(false_count),
                       "false_per_frame": false_count / frames if frames else None,
                       "persistent": len(persistent),
                       "persistent_classified": sum(shorter_side(p.box) >= min_face_size
                                                    for p in persistent)}
    return out


# --- tables ------------------------------------------------------------------------------------

def _cell(correct, n):
    return {"n": int(n), "correct": int(correct), "accuracy": correct / n if n else None}


def size_gate_table(records, bins=GATE_BINS):
    """{kind or `all`: {bin: {n, correct, accuracy}}} by the detector box's shorter side."""
    table = {}
    for kind in KINDS + ("all",):
        mine = [r for r in records if kind in ("all", r["kind"])]
        table[kind] = {}
        for lo, hi in bins:
            inside = [r["correct"] for r in mine if lo <= r["side"] < hi]
            table[kind][bin_name(lo, hi)] = _cell(sum(inside), len(inside))
    return table


def balanced(records, lo=0, hi=BIG):
    """Accuracy of masks, of no masks (bare and below the nose) and their mean, over the faces
    whose detector box is lo <= side < hi."""
    out = {}
    for label in ("mask", "no_mask"):
        hits = [r["correct"] for r in records if lo <= r["side"] < hi and LABELS[r["kind"]] == label]
        out[label] = _cell(sum(hits), len(hits))
    accuracies = [c["accuracy"] for c in out.values()]
    out["balanced"] = None if None in accuracies else float(np.mean(accuracies))
    return out


def recommend_min_face_size(table, records):
    """The smallest gate (a bin's lower edge) from which accuracy stays on target: per kind
    (TARGETS) in every bin at and above it when each of those bins holds MIN_BIN_FACES faces of
    each targeted kind; else the balanced accuracy of all faces at and above the gate reaches
    BALANCED_TARGET and no bin at or above it (of MIN_BIN_FACES masks and no masks) falls below
    BIN_FLOOR."""
    names = dict(zip(GATE_EDGES, bin_names()[1:]))
    bins = dict(zip(GATE_EDGES, GATE_BINS[1:]))
    sparse = [f"{kind} {names[e]}" for e in GATE_EDGES for kind in TARGETS
              if table[kind][names[e]]["n"] < MIN_BIN_FACES]
    per_kind = _first_edge_where_all(
        lambda e: all((table[k][names[e]]["accuracy"] or 0.0) >= TARGETS[k] for k in TARGETS))
    per_bin = {names[e]: balanced(records, *bins[e]) for e in GATE_EDGES}
    evaluable = {e for e in GATE_EDGES
                 if min(per_bin[names[e]][k]["n"] for k in ("mask", "no_mask")) >= MIN_BIN_FACES}
    from_edge = {e: balanced(records, e) for e in GATE_EDGES}
    by_balance = _first_edge_where_all(
        lambda e: (e not in evaluable or per_bin[names[e]]["balanced"] >= BIN_FLOOR)
        and (from_edge[e]["balanced"] or 0.0) >= BALANCED_TARGET)
    if by_balance is not None and not any(e >= by_balance for e in evaluable):
        by_balance = None
    rule = "balanced" if sparse else "per_kind"
    return {"min_face_size": by_balance if sparse else per_kind, "rule": rule,
            "per_kind_min_face_size": per_kind, "balanced_min_face_size": by_balance,
            "sparse_bins": sparse, "balanced_by_bin": per_bin,
            "balanced_from": {str(e): from_edge[e] for e in GATE_EDGES},
            "mask_weared_incorrect": {names[e]: table["mask_weared_incorrect"][names[e]]
                                      for e in GATE_EDGES}}


def whole_faces_gate(records):
    """The recommended gate over the faces whose detector box does not touch the frame's edge
    (the daemon decides on those only)."""
    whole = [r for r in records if not r["partial"]]
    return recommend_min_face_size(size_gate_table(whole), whole)["min_face_size"]


def _first_edge_where_all(ok):
    """The smallest edge from which `ok(edge)` holds for it and every larger edge, or None."""
    best = None
    for edge in reversed(GATE_EDGES):
        if not ok(edge):
            break
        best = edge
    return best


# The two scales a person's decision band has read: the model's own P(no mask) (until the scores
# were re-centred on the model's threshold) and the no-mask score (0.5 = the threshold).
BAND_SCALES = {"no_mask_score": "no-mask score (0.5 = the model's threshold)",
               "p_no_mask": "the model's P(no mask) (before)"}


def band_verdict(value, settings):
    """How a person whose frames all score `value` is decided: `mask`, `no_mask` or None."""
    if value >= settings.no_mask_above:
        return "no_mask"
    if value <= settings.mask_below:
        return "mask"
    return None


def whole_faces_at_gate(records, min_face_size):
    """The records of faces the daemon lets decide: not cut by the frame, at or above the gate."""
    return [r for r in records if r["side"] >= min_face_size and not r["partial"]]


def band_table(records, min_face_size, settings=DecisionSettings()):
    """Per scale and kind, over the whole faces at or above the size gate: how many a person whose
    every frame scored like that face would have decided right, wrong, or not at all."""
    faces = whole_faces_at_gate(records, min_face_size)
    table = {}
    for scale in BAND_SCALES:
        table[scale] = {}
        for kind in KINDS:
            counts = {"right": 0, "wrong": 0, "undecided": 0, "n": 0}
            for r in (r for r in faces if r["kind"] == kind):
                verdict = band_verdict(r[scale], settings)
                outcome = "undecided" if verdict is None else \
                    "right" if verdict == LABELS[kind] else "wrong"
                counts[outcome] += 1
                counts["n"] += 1
            table[scale][kind] = counts
    return {"mask_below": settings.mask_below, "no_mask_above": settings.no_mask_above,
            "min_face_size": min_face_size, "table": table}


NO_MASK_KINDS = ("without_mask", "mask_weared_incorrect")


def kind_table(records, min_face_size):
    """Of the whole faces at or above the size gate that the classifier calls no_mask, per
    annotated kind of no mask, how many it names a mask below the nose (its share at least one
    half): what a no_mask event's `reason` would say. None from a model that does not tell."""
    if not any(r.get("below_nose") is not None for r in records):
        return None
    called = [r for r in whole_faces_at_gate(records, min_face_size)
              if r.get("below_nose") is not None and r["no_mask_score"] >= 0.5]
    table = {kind: {"named_below_nose": sum(r["below_nose"] >= 0.5 for r in called
                                            if r["kind"] == kind),
                    "n": sum(r["kind"] == kind for r in called)} for kind in NO_MASK_KINDS}
    return {"min_face_size": min_face_size, "table": table}


def threshold_table(photo_dets, thresholds, min_face_size, min_iou=MATCH_IOU):
    """Per threshold: recall by kind and annotated size (RECALL_BINS), and false faces per photo
    (detections that match no annotated face, unannotated background faces included), all and
    those big enough to be classified (>= `min_face_size`)."""
    out = {}
    for t in thresholds:
        hits, totals, false, big = {}, {}, 0, 0
        for rec in photo_dets:
            keep = rec["scores"] >= t
            boxes = rec["boxes"][keep]
            assigned, extra = match_boxes(rec["truth"], boxes, rec["scores"][keep], min_iou)
            false += extra
            matched = set(assigned.tolist())
            big += sum(shorter_side(boxes[i]) >= min_face_size for i in range(len(boxes))
                       if i not in matched)
            for kind, side, ok in zip(rec["kinds"], rec["sides"], assigned >= 0):
                size = size_bin(side, RECALL_BINS)
                key = f"{kind} {size}"
                if size:
                    totals[key] = totals.get(key, 0) + 1
                    hits[key] = hits.get(key, 0) + int(ok)
        photos = max(1, len(photo_dets))
        out[str(t)] = {"recall": {k: _cell(hits[k], totals[k]) for k in sorted(totals)},
                       "false_faces": false, "false_per_photo": false / photos,
                       "classifiable_false_faces": int(big),
                       "classifiable_false_per_photo": big / photos}
    return out


def recall_of(row, bins=("48-96 px", ">= 96 px")):
    """Recall over all kinds in the named annotated-size bins of one threshold's row."""
    cells = [c for k, c in row["recall"].items() if k.split(" ", 1)[1] in bins]
    n = sum(c["n"] for c in cells)
    return sum(c["correct"] for c in cells) / n if n else None


def recommend_threshold(photos, videos, default):
    """The lowest threshold whose videos show no false face that persists long enough to be
    decided (and is big enough to be classified), with at most FALSE_PER_PHOTO_CEILING false
    faces big enough to be classified per photo."""
    ceiling = FALSE_PER_PHOTO_CEILING
    for t in sorted(photos, key=float):
        if videos.get(t, {}).get("persistent_classified", 0) == 0 \
                and photos[t]["classifiable_false_per_photo"] <= ceiling + 1e-9:
            return {"threshold": float(t), "default": default, "false_per_photo_ceiling": ceiling,
                    "recall_48_plus": recall_of(photos[t]),
                    "default_recall_48_plus": recall_of(photos[str(default)])}
    return {"threshold": default, "default": default, "false_per_photo_ceiling": ceiling}


def border_table(records):
    """{border: {fraction: {kind: {n, correct, accuracy, uncut_accuracy, found}}}}."""
    out = {}
    for border in CUT_BORDERS:
        out[border] = {}
        for fraction in CUT_FRACTIONS:
            row = {}
            for kind in KINDS + ("all",):
                mine = [r for r in records if r["border"] == border and r["fraction"] == fraction
                        and kind in ("all", r["kind"])]
                cell = _cell(sum(r["correct"] for r in mine), len(mine))
                cell["uncut_accuracy"] = (sum(r["uncut_correct"] for r in mine) / len(mine)
                                          if mine else None)
                cell["found"] = sum(r["found"] for r in mine) / len(mine) if mine else None
                cell["flipped"] = sum(r["correct"] != r["uncut_correct"] for r in mine)
                row[kind] = cell
            out[border][str(fraction)] = row
    return out


def recommend_partial(table):
    """`skip partial faces` when, at the smallest cut, some border costs a kind (of at least
    MIN_BIN_FACES faces) more than PARTIAL_TOLERANCE of accuracy, else `classify partial faces`;
    with that worst case."""
    smallest = str(min(CUT_FRACTIONS))
    cases = [dict(table[b][smallest][k], border=b, fraction=float(smallest), kind=k)
             for b in CUT_BORDERS for k in KINDS if table[b][smallest][k]["n"] >= MIN_BIN_FACES]
    if not cases:
        return {"rule": "not measured", "worst": None}
    worst = max(cases, key=lambda c: c["uncut_accuracy"] - c["accuracy"])
    skip = worst["uncut_accuracy"] - worst["accuracy"] > PARTIAL_TOLERANCE
    return {"rule": "skip partial faces" if skip else "classify partial faces", "worst": worst}


# --- the run -----------------------------------------------------------------------------------

def _second_opinion(meta):
    """{file, sha256, band, threshold} of a pair's second opinion, or None."""
    opinion = meta.second_opinion
    if opinion is None:
        return None
    return {"file": opinion.model_file, "sha256": opinion.sha256, "band": list(opinion.band),
            "threshold": opinion.threshold}


def measure_photos(detector, classifier, photos, threshold, min_iou=MATCH_IOU):
    """(size-gate records, border-cut records, detections per photo) over the photos; each
    photo is read and detected once."""
    gate, cuts, dets = [], [], []
    for set_name, path, faces in progress(photos, "photos"):
        image = read_image(path)
        boxes, scores = detections(detector, image)
        dets.append({"truth": [f["box"] for f in faces], "kinds": [f["label"] for f in faces],
                     "sides": [shorter_side(f["box"]) for f in faces],
                     "boxes": boxes, "scores": scores})
        gate += [dict(r, set=set_name, image=os.path.basename(path))
                 for r in gate_records(classifier, image, faces, boxes, scores, threshold, min_iou)]
        cuts += cut_records(classifier, detector, image, faces, threshold, min_iou)
    return gate, cuts, dets


def run(classifier_path, limit=None, videos=VIDEOS, video_step=VIDEO_STEP, video_limit=None,
        min_iou=MATCH_IOU):
    """Measure all three (the size gate, the detector's threshold, faces cut by the frame's
    edge) and return the results; `decision_report.write_outputs` writes them."""
    start = time.perf_counter()
    default = DetectorSettings().resolved()
    thresholds = tuple(sorted(set(THRESHOLDS) | {default.score_threshold}))
    detector = create_detector(DetectorSettings(score_threshold=min(thresholds)), CPU_ONE_THREAD)
    classifier = MaskClassifier.open(classifier_path, CPU_ONE_THREAD)
    photos = load_photos(photo_sets(), limit)
    gate, cuts, dets = measure_photos(detector, classifier, photos, default.score_threshold, min_iou)
    sampled = {name: video_detections(detector, shared_path("data", "videos", name), video_step,
                                      video_limit) for name in progress(videos, "videos")}
    min_face = ClassifierSettings().min_face_size
    table = size_gate_table(gate)
    photo_rows = threshold_table(dets, thresholds, min_face, min_iou)
    video_rows = video_summary(sampled, thresholds, min_face)
    cut_table = border_table(cuts)
    results = {
        "classifier": {"meta": _portable(classifier_path), "sha256": classifier.meta.sha256,
                       "threshold": classifier.meta.threshold,
                       "second_opinion": _second_opinion(classifier.meta)},
        "detector": {"type": default.type, "detect_width": default.detect_width,
                     "default_threshold": default.score_threshold, "match_iou": min_iou},
        "data": _data_summary(photos, sampled, video_step),
        "size_gate": {"current_min_face_size": min_face, "matched_faces": len(gate),
                      "annotated_faces": sum(len(f) for _, _, f in photos), "bins": bin_names(),
                      "table": table, "recommendation": recommend_min_face_size(table, gate),
                      "whole_faces_min_face_size": whole_faces_gate(gate), "faces": gate},
        "threshold": {"thresholds": list(thresholds), "photos": photo_rows, "videos": video_rows,
                      "recommendation": recommend_threshold(photo_rows, video_rows,
                                                            default.score_threshold)},
        "border_cuts": {"min_side": CUT_MIN_SIDE, "faces": len(cuts) // (len(CUT_BORDERS) *
                                                                         len(CUT_FRACTIONS)),
                        "table": cut_table,
                        "recommendation": recommend_partial(cut_table)},
        "band": band_table(gate, min_face),
        "kinds": kind_table(gate, min_face),
    }
    results["seconds"] = round(time.perf_counter() - start, 1)
    return results


def _portable(path):
    """A path as results may carry it: relative to the repository when inside it."""
    relative = os.path.relpath(os.path.abspath(path), REPO_ROOT)
    return os.path.abspath(path) if relative.startswith("..") else relative


def _data_summary(photos, sampled, video_step):
    sets = {}
    for set_name, _, faces in photos:
        entry = sets.setdefault(set_name, {"photos": 0, "faces": {k: 0 for k in KINDS}})
        entry["photos"] += 1
        for face in faces:
            entry["faces"][face["label"]] += 1
    return {"photos": sets, "videos": {n: len(s) for n, s in sampled.items()},
            "video_step": video_step}
