"""How a face becomes a classifier input: the one definition shared by training and the Pi.

`convert/` trains on crops made here and `edge/` classifies crops made here, so the framing of a
face (a square around the box, widened by a margin) and the resize are identical on both sides.
"""
import cv2
import numpy as np

from edge.errors import DataError

# MobileNetV2's input normalisation: real = (pixel - MEAN) / STD, so pixels 0..255 map to -1..1.
PIXEL_MEAN = 127.5
PIXEL_STD = 127.5
# How far a face box is widened on each side (as a fraction of its longer side) before cropping.
DEFAULT_MARGIN = 0.15


def square_box(box, margin=DEFAULT_MARGIN):
    """The square [x1, y1, x2, y2] centred on `box`, its side the longer side times 1 + 2*margin."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    return [cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0]


def crop_face(image, box, margin=DEFAULT_MARGIN):
    """Crop the squared, widened face box from an HxWx3 image; parts outside repeat the border."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in square_box(box, margin))
    if x2 <= x1 or y2 <= y1:
        raise DataError(f"empty face box {list(box)}")
    pad_left, pad_top = max(0, -x1), max(0, -y1)
    pad_right, pad_bottom = max(0, x2 - width), max(0, y2 - height)
    crop = image[max(0, y1):min(height, y2), max(0, x1):min(width, x2)]
    if crop.size == 0:
        raise DataError(f"face box {list(box)} lies outside the {width}x{height} image")
    if pad_left or pad_top or pad_right or pad_bottom:
        crop = cv2.copyMakeBorder(crop, pad_top, pad_bottom, pad_left, pad_right,
                                  cv2.BORDER_REPLICATE)
    return crop


def resize_square(image, size):
    """Resize an image to size x size: area averaging when shrinking, bilinear when enlarging."""
    height, width = image.shape[:2]
    interpolation = cv2.INTER_AREA if min(height, width) >= size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def normalize(pixels):
    """uint8 RGB pixels -> float32 in [-1, 1], as the classifier was trained."""
    return (np.asarray(pixels, dtype=np.float32) - PIXEL_MEAN) / PIXEL_STD
