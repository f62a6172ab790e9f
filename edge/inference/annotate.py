"""Draw faces, labels and scores on a frame (`maskdet detect --annotate`, the live view and
snapshots of the daemon), blur faces for privacy, crop and encode JPEG."""
import math

import cv2

COLOURS_BGR = {"mask": (60, 180, 60), "no_mask": (40, 40, 220), "unknown": (160, 160, 160)}
CAPTIONS = {"mask": "Mask", "no_mask": "No mask", "unknown": "Unknown"}


def percent(score):
    """A score as people read it: `97.3%` (the same rounding everywhere)."""
    return f"{score * 100:.1f}%"


def describe(label, score):
    """A label and its score as people read them: `No mask 97.3%`, `Mask 99.0%` or `Unknown`."""
    if label == "unknown" or score is None:
        return CAPTIONS["unknown"]
    return f"{CAPTIONS[label]} {percent(score)}"


def caption(face):
    """A face's label and score: `No mask 97.3%`, `Mask 99.0%` or `Unknown`."""
    return describe(face.label, face.score)


def draw_faces(frame_bgr, faces):
    """A copy of the frame with each face's box and caption."""
    out = frame_bgr.copy()
    thickness = max(1, round(max(out.shape[:2]) / 400))
    for face in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        colour = COLOURS_BGR[face.label]
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        text = caption(face)
        scale = 0.4 * thickness
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(0, y1 - th - base - 2)
        left = max(0, min(x1, out.shape[1] - tw - 2))
        cv2.rectangle(out, (left, top), (left + tw + 2, top + th + base + 2), colour, -1)
        cv2.putText(out, text, (left + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)
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


def draw_view(frame_bgr, faces, blur=True):
    """What a person watching the detector sees: a copy of the frame with every face blurred
    (unless `blur` is False), then each face's box, label and score drawn."""
    out = frame_bgr.copy()
    if blur:
        blur_regions(out, [face.box for face in faces])
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
