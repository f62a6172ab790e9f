"""Masks drawn onto bare training faces, in pairs: the rarest no-mask kind, a mask worn below the
nose (a few hundred real ones), gets a synthetic twin of every bare face, so the classifier learns
that a visible nose means no mask whatever covers the mouth; and the same face gets a second twin
with the same kind of mask drawn over its nose, labelled mask, so that the drawn cloth itself is
no sign of `no_mask` (with the first twins alone, plain surgical masks worn right were called
`no_mask` more often: issue 12).

YuNet's five landmarks (eyes, nose tip, mouth corners) place the mask: below the nose, its top
edge between just under the nostrils and the chin; over it, between the eyes and the nose tip; its
width the jaw's, colours and pleats of common masks, soft edges and ear straps. Only training
faces get twins: validation stays real photos.
"""
import logging

import cv2
import numpy as np

from edge.inference.fetch import resolve

log = logging.getLogger(__name__)

PAD = 0.4  # each side, so that YuNet finds a face filling the whole crop
MIN_EYE_DISTANCE = 8  # pixels: smaller faces give landmarks too rough to place a mask
# RGB colours of common masks: surgical blue and white, black, grey, navy, pink, khaki.
COLOURS = ((170, 205, 230), (235, 238, 240), (35, 35, 38), (140, 140, 145), (40, 50, 90),
           (230, 180, 190), (190, 175, 140))


class LandmarkFinder:
    """YuNet (OpenCV's FaceDetectorYN) for the five landmarks of the face a crop shows."""

    def __init__(self, score_threshold=0.5):
        self.detector = cv2.FaceDetectorYN.create(resolve("yunet"), "", (320, 320),
                                                  score_threshold, 0.3, 50)

    def find(self, face_rgb):
        """[5, 2] landmarks (right eye, left eye, nose tip, right and left mouth corner) of the
        largest face in the crop, or None."""
        height, width = face_rgb.shape[:2]
        pad_y, pad_x = int(height * PAD), int(width * PAD)
        padded = cv2.copyMakeBorder(np.ascontiguousarray(face_rgb[..., ::-1]), pad_y, pad_y,
                                    pad_x, pad_x, cv2.BORDER_REPLICATE)
        self.detector.setInputSize((padded.shape[1], padded.shape[0]))
        _, faces = self.detector.detect(padded)
        if faces is None or not len(faces):
            return None
        best = max(faces, key=lambda f: f[2] * f[3])
        points = best[4:14].reshape(5, 2) - (pad_x, pad_y)
        if np.linalg.norm(points[1] - points[0]) < MIN_EYE_DISTANCE:
            return None
        return points


BELOW_NOSE, OVER_NOSE = "below_nose", "over_nose"


def mask_polygon(points, rng, worn=BELOW_NOSE):
    """The outline of a mask worn below the nose or over it (int32 [N, 2]), its two top corners
    and the eye distance, from the landmarks; its size and height vary with `rng`."""
    right_eye, left_eye, nose, right_mouth, left_mouth = (np.asarray(p, np.float64) for p in points)
    eye_distance = float(np.linalg.norm(left_eye - right_eye))
    mouth = (right_mouth + left_mouth) / 2
    across = (left_eye - right_eye) / eye_distance
    down = np.array([-across[1], across[0]])  # perpendicular to the eyes, towards the chin
    if np.dot(mouth - nose, down) < 0:
        down = -down
    nose_to_mouth = max(float(np.dot(mouth - nose, down)), eye_distance * 0.2)
    if worn == OVER_NOSE:
        # Top edge: on the bridge of the nose, between the eyes' line and the nose tip.
        eyes = (right_eye + left_eye) / 2
        eyes_to_nose = max(float(np.dot(nose - eyes, down)), eye_distance * 0.2)
        top = eyes + down * eyes_to_nose * rng.uniform(0.35, 0.7)
        depth = float(np.dot(mouth - top, down)) + eye_distance * rng.uniform(0.6, 0.9)
    else:
        # Top edge: from just under the nostrils down to under the lower lip (worn on the chin).
        top = nose + down * nose_to_mouth * rng.uniform(0.25, 1.3)
        depth = eye_distance * rng.uniform(0.95, 1.3)
    top = top + across * float(np.dot(mouth - top, across))  # centred on the mouth
    half_width = eye_distance * rng.uniform(0.95, 1.2)
    corner_a, corner_b = top - across * half_width, top + across * half_width
    arc = [top + across * half_width * np.cos(t) + down * depth * np.sin(t)
           for t in np.linspace(0, np.pi, 24)]  # from corner b round the chin to corner a
    polygon = np.array([corner_a, corner_b] + arc).round().astype(np.int32)
    return polygon, corner_a, corner_b, eye_distance


def _texture(shape, colour, rng):
    """A mask's cloth: its colour, horizontal pleats, a light gradient and fine noise."""
    height, width = shape[:2]
    rows = np.arange(height, dtype=np.float32)[:, None]
    pleats = 1.0 + 0.06 * np.sin(rows / max(height / 40.0, 1.0) * rng.uniform(0.8, 1.6))
    shade = np.linspace(1.05, 0.85, height, dtype=np.float32)[:, None]
    noise = rng.normal(1.0, 0.03, (height, width)).astype(np.float32)
    cloth = np.array(colour, np.float32)[None, None, :] * (pleats * shade * noise)[..., None]
    return np.clip(cloth, 0, 255)


def draw_mask(face_rgb, points, rng, worn=BELOW_NOSE):
    """A copy of a bare face with a mask drawn below its nose or over it (landmarks from
    LandmarkFinder)."""
    polygon, top_left, top_right, eye_distance = mask_polygon(points, rng, worn)
    alpha = np.zeros(face_rgb.shape[:2], np.float32)
    cv2.fillPoly(alpha, [polygon], 1.0)
    strap = max(1, int(round(eye_distance * 0.05)))
    right_eye, left_eye = points[0], points[1]
    for corner, eye, sign in ((top_left, right_eye, -1), (top_right, left_eye, 1)):
        ear = eye + (left_eye - right_eye) * 0.45 * sign
        cv2.line(alpha, tuple(int(v) for v in corner), tuple(int(v) for v in ear), 1.0, strap)
    blur = max(1, int(eye_distance * 0.04)) * 2 + 1
    alpha = cv2.GaussianBlur(alpha, (blur, blur), 0)[..., None]
    colour = COLOURS[rng.integers(len(COLOURS))]
    cloth = _texture(face_rgb.shape, colour, rng)
    out = face_rgb.astype(np.float32) * (1 - alpha) + cloth * alpha
    return out.round().astype(np.uint8)


def mask_twins(images, rng, kinds=(BELOW_NOSE, OVER_NOSE)):
    """For each bare face image (RGB uint8), {kind: its twin with a mask so worn}, or None when no
    landmarks are found. Returns (twins, found count)."""
    finder = LandmarkFinder()
    twins = []
    for image in images:
        points = finder.find(image)
        twins.append(None if points is None else
                     {kind: draw_mask(image, points, rng, kind) for kind in kinds})
    found = sum(t is not None for t in twins)
    log.info("masks (%s) drawn on %d of %d bare faces", ", ".join(kinds), found, len(images))
    return twins, found
