"""A model's metadata file (`models/<name>.json`): what `edge/` needs to use the model correctly."""
import hashlib
import json
import math
import os
from dataclasses import dataclass
from typing import Optional

from edge.errors import ModelError


def sha256_of(path):
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class SecondOpinion:
    """A second classifier asked about the faces the first is unsure of: those whose P(no mask)
    from the first lies within `band`; their decision is the mean of the two P(no mask) against
    `threshold` (both chosen on the validation set). Same labels, normalization and framing."""

    model_file: str
    sha256: str
    input_size: int
    band: tuple
    threshold: float
    score_scale: float = 1.0

    def asks(self, no_mask_probability):
        """Whether a face with this P(no mask) from the first model goes to the second."""
        return self.band[0] <= no_mask_probability <= self.band[1]


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
    score_scale: float = 1.0  # the no-mask score's log-odds factor, fitted on validation
    # the labels whose scores add up to P(no mask); a model with one for masks worn below the
    # nose has two (no_mask, mask_below_nose), older ones the positive label alone
    no_mask_labels: tuple = ()
    second_opinion: Optional[SecondOpinion] = None

    @property
    def model_path(self):
        """Absolute path of the int8 model next to the metadata file."""
        return os.path.join(os.path.dirname(self.path), self.model_file)

    @property
    def second_model_path(self):
        """Absolute path of the second opinion's int8 model, or None."""
        if self.second_opinion is None:
            return None
        return os.path.join(os.path.dirname(self.path), self.second_opinion.model_file)

    @property
    def no_mask_indices(self):
        """Indices in the model's output of the labels that add up to P(no mask)."""
        return tuple(self.labels.index(label) for label in self.no_mask_labels or
                     (self.positive_label,))


REMAKE = "re-create it with `maskdet-convert quantize`"


def _require(data, path, *keys):
    value = data
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise ModelError(f"{path}: missing key '{'.'.join(keys)}' in the model metadata; {REMAKE}")
        value = value[key]
    return value


def _bad(path, keys, wanted, value):
    return ModelError(f"{path}: '{'.'.join(keys)}' must be {wanted}, not "
                      f"{type(value).__name__} {value!r:.60}; {REMAKE}")


def _number(data, path, *keys, low=None, high=None, integer=False, open_interval=False):
    """A finite number (an int when `integer`) at `keys`, within the bounds."""
    value = _require(data, path, *keys)
    kinds = int if integer else (int, float)
    wanted = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        raise _bad(path, keys, wanted, value)
    if open_interval:
        inside = (low is None or value > low) and (high is None or value < high)
        bounds = f"above {low}" if high is None else f"strictly between {low} and {high}"
    else:
        inside = (low is None or value >= low) and (high is None or value <= high)
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
    if not inside:
        raise ModelError(f"{path}: '{'.'.join(keys)}' is {value}, it must be {bounds}; {REMAKE}")
    return value


def _text(data, path, *keys):
    value = _require(data, path, *keys)
    if not isinstance(value, str) or not value:
        raise _bad(path, keys, "a non-empty string", value)
    return value


def _read_json(path):
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise ModelError(f"model metadata {path} does not exist: give the metadata JSON of a "
                         "classifier (models/mask_classifier.json)") from None
    except IsADirectoryError:
        raise ModelError(f"model metadata {path} is a folder: give the metadata JSON file in it "
                         "(e.g. mask_classifier.json)") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ModelError(f"model metadata {path} cannot be read: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ModelError(f"model metadata {path} is not JSON text (byte {exc.start} is not UTF-8): "
                         "give the metadata JSON, not the .tflite model") from None
    except ValueError as exc:
        raise ModelError(f"model metadata {path} is not readable JSON: {exc}") from None


def load_classifier_meta(path):
    """Read and check a classifier metadata file; ModelError names the file and the bad key."""
    path = os.path.abspath(os.fspath(path))
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ModelError(f"model metadata {path} must hold a JSON object, not a "
                         f"{type(data).__name__}; {REMAKE}")
    labels = _require(data, path, "labels")
    if not isinstance(labels, list) or len(labels) < 2 or \
            not all(isinstance(label, str) and label for label in labels):
        raise _bad(path, ("labels",), "a list of at least two label names", labels)
    if len(set(labels)) != len(labels):
        raise ModelError(f"{path}: 'labels' names a label twice: {labels}; {REMAKE}")
    labels = tuple(labels)
    positive = _text(data, path, "positive_label")
    if positive not in labels:
        raise ModelError(f"{path}: positive_label {positive!r} is not one of labels {list(labels)}")
    threshold = float(_number(data, path, "threshold", low=0.0, high=1.0, open_interval=True))
    no_mask_labels = _no_mask_labels(data, path, labels, positive)
    model_file = _text(data, path, "files", "int8")
    sha256 = _text(data, path, "sha256", model_file)
    return ClassifierMeta(
        path=path,
        model_file=model_file,
        input_size=_number(data, path, "input", "size", low=8, high=4096, integer=True),
        labels=labels,
        positive_label=positive,
        threshold=threshold,
        mean=float(_number(data, path, "input", "normalization", "mean")),
        std=float(_number(data, path, "input", "normalization", "std", low=0.0, open_interval=True)),
        crop_margin=float(_number(data, path, "input", "crop_margin", low=0.0, high=2.0)),
        sha256=sha256,
        score_scale=float(_number(data, path, "score_scale", low=0.05, high=20.0))
        if "score_scale" in data else 1.0,
        no_mask_labels=no_mask_labels,
        second_opinion=_second_opinion(data, path),
    )


def _second_opinion(data, path):
    """The metadata's `second_opinion` (None when absent): its model file (in `files`, with a
    sha256), input size, band of the first model's P(no mask) and threshold on the mean."""
    if "second_opinion" not in data:
        return None
    model_file = _text(data, path, "files", "second_opinion")
    if model_file == data["files"].get("int8"):
        raise ModelError(f"{path}: files.second_opinion names the first model itself "
                         f"({model_file}); {REMAKE}")
    band = _require(data, path, "second_opinion", "band")
    if not isinstance(band, list) or len(band) != 2 or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in band) or \
            not 0.0 <= band[0] < band[1] <= 1.0:
        raise _bad(path, ("second_opinion", "band"), "two numbers 0 <= low < high <= 1", band)
    return SecondOpinion(
        model_file=model_file,
        sha256=_text(data, path, "sha256", model_file),
        input_size=_number(data, path, "second_opinion", "input_size", low=8, high=4096,
                           integer=True),
        band=(float(band[0]), float(band[1])),
        threshold=float(_number(data, path, "second_opinion", "threshold", low=0.0, high=1.0,
                                open_interval=True)),
        score_scale=float(_number(data, path, "second_opinion", "score_scale", low=0.05,
                                  high=20.0)))


def _no_mask_labels(data, path, labels, positive):
    """The metadata's `no_mask_labels` (the positive label alone when absent): labels of the
    model, the positive one among them, not every label (a face must be able to be masked)."""
    if "no_mask_labels" not in data:
        return (positive,)
    value = data["no_mask_labels"]
    if not isinstance(value, list) or not value or \
            not all(isinstance(label, str) and label for label in value):
        raise _bad(path, ("no_mask_labels",), "a list of label names", value)
    unknown = [label for label in value if label not in labels]
    if unknown or positive not in value or len(set(value)) != len(value) or \
            len(value) >= len(labels):
        raise ModelError(f"{path}: no_mask_labels {value} must name, once each, some of labels "
                         f"{list(labels)}: {positive!r} and not all of them; {REMAKE}")
    return tuple(value)
