"""Draw faces, labels and scores on a frame (for `maskdet detect --annotate`)."""
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
