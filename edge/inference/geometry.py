"""Face boxes and the pure geometry over them: IoU, non-maximum suppression, letterboxing, and
polygons (point in polygon, a face inside a region)."""
import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Face:
    """A detected face: [x1, y1, x2, y2] in frame pixels and the detector's confidence."""

    box: tuple
    score: float

    @property
    def size(self):
        """The shorter side of the box in pixels."""
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


def iou(box, boxes):
    """Intersection over union of one [x1, y1, x2, y2] box with each row of an [N, 4] array."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def match_by_iou(truth_boxes, detection_boxes, detection_scores, min_iou):
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


def nms(boxes, scores, iou_threshold=0.3):
    """Indices kept by greedy non-maximum suppression, highest score first."""
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    keep = []
    boxes = np.asarray(boxes, dtype=np.float64)
    while order:
        best = order.pop(0)
        keep.append(best)
        if order:
            overlaps = iou(boxes[best], boxes[order])
            order = [i for i, o in zip(order, overlaps) if o <= iou_threshold]
    return keep


def weighted_nms(boxes, scores, iou_threshold=0.3):
    """MediaPipe's weighted suppression: each cluster of overlapping boxes becomes their
    score-weighted mean box with the cluster's best score. Returns (boxes [K, 4], scores [K])."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64)
    remaining = np.argsort(-scores, kind="stable")
    out_boxes, out_scores = [], []
    while remaining.size:
        overlaps = iou(boxes[remaining[0]], boxes[remaining])
        cluster = remaining[overlaps > iou_threshold]
        weights = scores[cluster]
        out_boxes.append((boxes[cluster] * weights[:, None]).sum(0) / weights.sum())
        out_scores.append(scores[remaining[0]])
        remaining = remaining[overlaps <= iou_threshold]
    return np.array(out_boxes).reshape(-1, 4), np.array(out_scores)


def shrink(image, width, height):
    """Resize down to width x height quickly: exact halvings by area averaging (OpenCV's fast
    path) while the image is at least twice too big, then one bilinear step."""
    while image.shape[1] >= 2 * width and image.shape[0] >= 2 * height:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Letterbox:
    """How a frame was scaled and padded into a square model input, to map boxes back."""

    scale: float
    pad_x: float
    pad_y: float
    size: int

    def to_frame(self, boxes_normalized):
        """[N, 4] boxes in 0..1 of the square input -> frame pixels."""
        boxes = np.asarray(boxes_normalized, dtype=np.float64) * self.size
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - self.pad_x) / self.scale
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - self.pad_y) / self.scale
        return boxes


def letterbox(frame, size):
    """Scale a frame to fit a size x size square, centred on black; returns (image, Letterbox)."""
    height, width = frame.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = shrink(frame, new_w, new_h)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    square = np.zeros((size, size, 3), dtype=frame.dtype)
    square[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = resized
    return square, Letterbox(scale, pad_x, pad_y, size)


def clip_boxes(boxes, width, height):
    """Clip [N, 4] pixel boxes to the frame."""
    boxes = np.asarray(boxes, dtype=np.float64).copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return boxes


def to_faces(boxes, scores, width, height, min_side=1.0):
    """Faces from pixel boxes and scores, clipped to the frame, degenerate boxes dropped."""
    faces = []
    for box, score in zip(clip_boxes(boxes, width, height), scores):
        if box[2] - box[0] >= min_side and box[3] - box[1] >= min_side:
            faces.append(Face(tuple(float(v) for v in box), float(score)))
    return faces


# -- polygons (ignore regions): pure functions over [[x, y], ...] in any one unit ----------------

MIN_POLYGON_AREA = 1e-9  # below this a polygon is a line (in fractions of a frame: 1e-9 of it)


def polygon_area(points):
    """The area of a polygon [[x, y], ...] (shoelace formula; any winding, never negative)."""
    total = 0.0
    for (x1, y1), (x2, y2) in zip(points, list(points[1:]) + list(points[:1])):
        total += x1 * y2 - x2 * y1
    return abs(total) / 2.0


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def polygon_problem(points):
    """Why `points` ([[x, y], ...]) is not a polygon to test faces against, or None: a point that
    is not two finite numbers, fewer than 3 points, or no area (every point on one line)."""
    for i, point in enumerate(points):
        if len(point) != 2 or not all(_is_number(v) for v in point):
            return f"point {i} {list(point)}: a point is two finite numbers [x, y]"
    if len(points) < 3:
        return f"has {len(points)} point(s): a region needs at least 3"
    if polygon_area(points) < MIN_POLYGON_AREA:
        return "has no area: its points lie on one line"
    return None


def _on_segment(x, y, a, b, tolerance=1e-9):
    """True when (x, y) lies on the segment from a to b (within `tolerance`)."""
    (x1, y1), (x2, y2) = a, b
    cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
    if abs(cross) > tolerance * max(1.0, abs(x2 - x1) + abs(y2 - y1)):
        return False
    return (min(x1, x2) - tolerance <= x <= max(x1, x2) + tolerance and
            min(y1, y2) - tolerance <= y <= max(y1, y2) + tolerance)


def point_in_polygon(x, y, points):
    """True when (x, y) is inside the polygon [[x, y], ...] or on its outline (even-odd rule:
    convex and concave outlines alike)."""
    inside = False
    for a, b in zip(points, list(points[1:]) + list(points[:1])):
        if _on_segment(x, y, a, b):
            return True
        (x1, y1), (x2, y2) = a, b
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def box_centre(box):
    """The centre (x, y) of an [x1, y1, x2, y2] box."""
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def box_in_regions(box, regions, width, height):
    """True when the centre of a pixel box lies in any of `regions`, polygons given as fractions
    of a frame `width` x `height` pixels (x / width, y / height)."""
    x, y = box_centre(box)
    return any(point_in_polygon(x / width, y / height, polygon) for polygon in regions)
