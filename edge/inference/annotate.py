"""Draw faces, labels and scores on a frame (`maskdet detect --annotate`, the live view and
snapshots of the daemon), the ignore regions and the faces in them, blur faces for privacy, crop
and encode JPEG."""
import math

import cv2
import numpy as np

COLOURS_BGR = {"mask": (60, 180, 60), "no_mask": (40, 40, 220), "unknown": (160, 160, 160)}
CAPTIONS = {"mask": "Mask", "no_mask": "No mask", "unknown": "Unknown"}
BELOW_NOSE_CAPTION = "Mask below nose"  # no mask, of the kind a three-output model tells
IGNORED_BGR = (96, 96, 96)  # a face in an ignore region: a darker grey than `unknown`
IGNORED_CAPTION = "Ignored"
REGION_BGR = (210, 210, 210)  # an ignore region's outline, tint and label
REGION_ALPHA = 0.3  # how much of the tint covers the picture inside a region
REGION_LABEL = "ignored"


def percent(score):
    """A score as people read it: `97.3%` (the same rounding everywhere)."""
    return f"{score * 100:.1f}%"


def describe(label, score, kind=None):
    """A label and its score as people read them: `No mask 97.3%`, `Mask 99.0%` or `Unknown`;
    `Mask below nose 88.0%` for no mask of that kind (`kind`: `classifier.no_mask_kind`)."""
    if label == "unknown" or score is None:
        return CAPTIONS["unknown"]
    below = label == "no_mask" and kind == "mask_below_nose"
    return f"{BELOW_NOSE_CAPTION if below else CAPTIONS[label]} {percent(score)}"


def caption(face):
    """A face's label and score: `No mask 97.3%`, `Mask below nose 88.0%`, `Mask 99.0%` or
    `Unknown` (`face`: anything with box, label, score and kind, as FaceResult)."""
    return describe(face.label, face.score, face.kind)


def _thickness(frame):
    return max(1, round(max(frame.shape[:2]) / 400))


def _label(out, text, x, y, colour, thickness, ink=(255, 255, 255)):
    """A caption on a filled `colour` box whose bottom-left is near (x, y), kept in the frame."""
    scale = 0.4 * thickness
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    top = min(max(0, y - th - base - 2), max(0, out.shape[0] - th - base - 2))
    left = max(0, min(x, out.shape[1] - tw - 2))
    cv2.rectangle(out, (left, top), (left + tw + 2, top + th + base + 2), colour, -1)
    cv2.putText(out, text, (left + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, ink,
                thickness, cv2.LINE_AA)


def _box(out, box, colour, text, thickness):
    """A box and its caption above it, in place."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
    _label(out, text, x1, y1, colour, thickness)


def draw_faces(frame_bgr, faces):
    """A copy of the frame with each face's box and caption."""
    out = frame_bgr.copy()
    thickness = _thickness(out)
    for face in faces:
        _box(out, face.box, COLOURS_BGR[face.label], caption(face), thickness)
    return out


def draw_ignored(frame_bgr, faces):
    """A copy of the frame with each face of an ignore region boxed in grey, captioned
    `Ignored` (whatever its label: it is not a person)."""
    out = frame_bgr.copy()
    thickness = _thickness(out)
    for face in faces:
        _box(out, face.box, IGNORED_BGR, IGNORED_CAPTION, thickness)
    return out


def region_pixels(polygon, shape):
    """A polygon in fractions of the frame ([[x, y], ...], 0..1) as an int32 array of pixel
    points of a frame of `shape` (height, width, ...); 1.0 is the last row or column."""
    height, width = shape[:2]
    points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2) * (width, height)
    points = np.rint(points).clip(0, (width - 1, height - 1))
    return points.astype(np.int32)


def draw_ignore_regions(frame_bgr, regions):
    """A copy of the frame with each ignore region (polygons in fractions of the frame's width
    and height) tinted, outlined and labelled `ignored` at its top corner."""
    out = frame_bgr.copy()
    if not regions:
        return out
    thickness = _thickness(out)
    polygons = [region_pixels(polygon, out.shape) for polygon in regions]
    tint = out.copy()
    cv2.fillPoly(tint, polygons, REGION_BGR)
    cv2.addWeighted(tint, REGION_ALPHA, out, 1.0 - REGION_ALPHA, 0, dst=out)
    cv2.polylines(out, polygons, True, REGION_BGR, thickness)
    for points in polygons:
        x, y = points[np.lexsort((points[:, 0], points[:, 1]))[0]]  # the top corner
        _label(out, REGION_LABEL, int(x), int(y) + 4 * thickness + 12, REGION_BGR, thickness,
               ink=(0, 0, 0))
    return out


PIXEL_BLOCKS = 8  # a blurred face keeps this many blocks across: no features, still a face


def crop_bounds(box, shape, margin=0.0):
    """A box widened by `margin` of its size on each side, in whole pixels inside the frame;
    None when nothing of it is inside."""
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    height, width = shape[:2]
    left, top = max(0, int(math.floor(x1 - dx))), max(0, int(math.floor(y1 - dy)))
    right, bottom = min(width, int(math.ceil(x2 + dx))), min(height, int(math.ceil(y2 + dy)))
    if right <= left or bottom <= top:
        return None
    return left, top, right, bottom


def blur_regions(frame_bgr, boxes, margin=0.15):
    """Pixelate each box (widened by `margin`) in place, so that nobody can be recognised: the
    region is shrunk to PIXEL_BLOCKS blocks across and blown up again. Returns the frame."""
    for box in boxes:
        clipped = crop_bounds(box, frame_bgr.shape, margin)
        if clipped is None:
            continue
        left, top, right, bottom = clipped
        region = frame_bgr[top:bottom, left:right]
        w, h = right - left, bottom - top
        blocks_x = max(1, min(PIXEL_BLOCKS, w))
        blocks_y = max(1, min(PIXEL_BLOCKS, round(PIXEL_BLOCKS * h / max(w, 1)) or 1, h))
        small = cv2.resize(region, (blocks_x, blocks_y), interpolation=cv2.INTER_AREA)
        frame_bgr[top:bottom, left:right] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    return frame_bgr


def draw_view(frame_bgr, faces, blur=True, ignored=(), regions=()):
    """What a person watching the detector sees: a copy of the frame with every face blurred
    (unless `blur` is False; also the `ignored` ones), the ignore `regions` (fractions of the
    frame), the ignored faces in grey, then each face's box, label and score drawn."""
    out = frame_bgr.copy()
    if blur:
        blur_regions(out, [face.box for face in (*faces, *ignored)])
    if regions:
        out = draw_ignore_regions(out, regions)
    if ignored:
        out = draw_ignored(out, ignored)
    return draw_faces(out, faces) if faces else out


def crop(frame_bgr, box, margin):
    """A copy of the part of the frame around `box`, widened by `margin` of its size on each
    side (clipped to the frame); the whole frame when nothing of the box is inside."""
    clipped = crop_bounds(box, frame_bgr.shape, margin)
    if clipped is None:
        return frame_bgr.copy()
    left, top, right, bottom = clipped
    return frame_bgr[top:bottom, left:right].copy()


def shrink(frame_bgr, max_width):
    """The frame scaled down to at most `max_width` pixels wide (0: as it is)."""
    height, width = frame_bgr.shape[:2]
    if not max_width or width <= max_width:
        return frame_bgr
    scale = max_width / width
    return cv2.resize(frame_bgr, (max_width, max(1, round(height * scale))), interpolation=cv2.INTER_AREA)


def encode_jpeg(frame_bgr, quality=80, comment=None):
    """JPEG bytes of a BGR frame; `comment` (text) goes into a COM segment right after the start
    of image, where any JPEG reader skips it (a snapshot carries its event id there)."""
    ok, data = cv2.imencode(".jpg", frame_bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode the frame as JPEG")
    data = data.tobytes()
    if comment:
        text = comment.encode("utf-8")[:60000]
        segment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
        data = data[:2] + segment + data[2:]
    return data


def jpeg_comment(data):
    """The text of the first COM segment of JPEG bytes, or None."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xFE:
            return data[i + 4:i + 2 + length].decode("utf-8", "replace")
        if marker == 0xDA:  # start of scan: no more headers
            return None
        i += 2 + length
    return None
