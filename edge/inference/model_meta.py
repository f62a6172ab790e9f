"""A model's metadata file (`models/<name>.json`): what `edge/` needs to use the model correctly."""
import hashlib
import json
import os
from dataclasses import dataclass

from edge.errors import ModelError


def sha256_of(path):
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ClassifierMeta:
    """The parts of a classifier's metadata that inference depends on."""

    path: str
    model_file: str
    input_size: int
    labels: tuple
    positive_label: str
    threshold: float
    mean: float
    std: float
    crop_margin: float
    sha256: str

    @property
    def model_path(self):
        """Absolute path of the int8 model next to the metadata file."""
        return os.path.join(os.path.dirname(self.path), self.model_file)

    @property
    def positive_index(self):
        """Index of the positive label (`no_mask`) in the model's output."""
        return self.labels.index(self.positive_label)


def _require(data, path, *keys):
    value = data
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise ModelError(f"{path}: missing key '{'.'.join(keys)}' in the model metadata; "
                             "re-create it with `maskdet-convert quantize`")
        value = value[key]
    return value


def load_classifier_meta(path):
    """Read and check a classifier metadata file; ModelError names the file and the bad key."""
    path = os.path.abspath(os.fspath(path))
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ModelError(f"model metadata {path} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"model metadata {path} is not readable JSON: {exc}") from exc
    labels = tuple(_require(data, path, "labels"))
    positive = _require(data, path, "positive_label")
    if positive not in labels:
        raise ModelError(f"{path}: positive_label {positive!r} is not one of labels {labels}")
    threshold = float(_require(data, path, "threshold"))
    if not 0.0 < threshold < 1.0:
        raise ModelError(f"{path}: threshold {threshold} must lie strictly between 0 and 1")
    model_file = _require(data, path, "files", "int8")
    return ClassifierMeta(
        path=path,
        model_file=model_file,
        input_size=int(_require(data, path, "input", "size")),
        labels=labels,
        positive_label=positive,
        threshold=threshold,
        mean=float(_require(data, path, "input", "normalization", "mean")),
        std=float(_require(data, path, "input", "normalization", "std")),
        crop_margin=float(_require(data, path, "input", "crop_margin")),
        sha256=_require(data, path, "sha256", model_file),
    )
