"""Augmentation for an entrance camera: framing, lighting, blur, compression and distance.

Works on one uint8 RGB image at a time with a numpy Generator, so a seed reproduces a view.
"""
import cv2
import numpy as np


def random_crop(image, rng, min_area=0.7, max_aspect=1.15):
    """A random crop of 70-100 % of the area with a slightly changed aspect (framing jitter)."""
    height, width = image.shape[:2]
    area = rng.uniform(min_area, 1.0) * height * width
    aspect = np.exp(rng.uniform(-np.log(max_aspect), np.log(max_aspect)))
    crop_w = int(min(width, round(np.sqrt(area * aspect))))
    crop_h = int(min(height, round(np.sqrt(area / aspect))))
    x = int(rng.integers(0, width - crop_w + 1))
    y = int(rng.integers(0, height - crop_h + 1))
    return image[y:y + crop_h, x:x + crop_w]


def rotate(image, rng, max_degrees=12.0):
    """Rotate about the centre by up to +-max_degrees (a tilted head), borders reflected."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-max_degrees, max_degrees), 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT_101)


def photometric(image, rng):
    """Brightness, contrast and per-channel colour gain (white balance) shifts."""
    img = image.astype(np.float32)
    contrast = rng.uniform(0.7, 1.3)
    brightness = rng.uniform(-40, 40)
    gains = rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    mean = img.mean()
    img = (img - mean) * contrast + mean + brightness
    img *= gains
    return np.clip(img, 0, 255).astype(np.uint8)


def blur(image, rng):
    """Gaussian blur (focus, motion-free softness)."""
    sigma = rng.uniform(0.5, 1.6)
    return cv2.GaussianBlur(image, (0, 0), sigma)


def jpeg(image, rng):
    """Re-encode as a low-quality JPEG (streamed camera artefacts)."""
    quality = int(rng.integers(25, 80))
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if ok else image


def distant(image, rng, smallest=14, largest=40):
    """Shrink to a small face (14-40 px) and enlarge back: a person far from the camera."""
    height, width = image.shape[:2]
    side = int(rng.integers(smallest, largest + 1))
    small = cv2.resize(image, (side, max(1, round(side * height / width))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def augment(image, size, rng):
    """One augmented size x size view of an RGB uint8 image."""
    img = random_crop(image, rng)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        img = rotate(img, rng)
    if rng.random() < 0.8:
        img = photometric(img, rng)
    if rng.random() < 0.3:
        img = distant(img, rng)
    if rng.random() < 0.2:
        img = blur(img, rng)
    if rng.random() < 0.3:
        img = jpeg(img, rng)
    return img
