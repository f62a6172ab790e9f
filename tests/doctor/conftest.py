"""Fixtures of the doctor's tests: the stand-in libedgetpu (tests/inference/edgetpu_stand_in.py),
configs written to files, and a copy of the shipped classifier that a test may give an Edge TPU
build."""

import pytest

from tests.conftest import copy_shipped_classifier
from tests.inference.edgetpu_stand_in import stand_in, stand_in_library  # noqa: F401  (fixtures)

__all__ = ["stand_in", "stand_in_library"]  # the fixtures, re-exported (pyflakes counts them used)


@pytest.fixture
def write_config(tmp_path):
    """write_config(text) -> the path of a config file holding `text` (YAML)."""
    def write(text, name="config.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


@pytest.fixture
def classifier_copy(tmp_path):
    """A copy of the shipped classifier (metadata and int8 model) in its own folder: (metadata
    path, model path)."""
    folder = tmp_path / "models"
    copy_shipped_classifier(folder)
    return str(folder / "mask_classifier.json"), str(folder / "mask_classifier_int8.tflite")
