"""The inference core on real photos with the shipped classifier."""
import cv2
import numpy as np
import pytest

from edge.inference.classifier import MaskClassifier, as_rgb
from edge.inference.geometry import Face
from edge.paths import models_dir
from edge.inference.pipeline import FaceMaskPipeline
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def classifier():
    return MaskClassifier.open(f"{models_dir()}/mask_classifier.json")


class FixedDetector:
    name = "fixed"

    def __init__(self, faces):
        self.faces = faces

    def detect(self, frame):
        return self.faces


def test_tiny_faces_are_unknown_not_guessed(classifier):
    frame = np.full((200, 200, 3), 120, np.uint8)
    pipeline = FaceMaskPipeline(FixedDetector([Face((10, 10, 30, 30), 0.9), Face((50, 50, 150, 150), 0.8)]),
                                classifier, min_face_size=32)
    result = pipeline.analyze(frame)
    assert [f.label for f in result.faces][0] == "unknown"
    assert result.faces[1].label in ("mask", "no_mask")
    assert set(result.timings_ms) == {"detect", "classify"}


def test_a_masked_face_is_mask_and_grace_hopper_no_mask(classifier):
    masked = cv2.imread(shared_path("data", "faces", "with_mask", "with_mask_0001.jpg"))
    assert classifier.classify(as_rgb(masked)).label == "mask"
    hopper = cv2.imread(shared_path("data", "images", "grace_hopper.jpg"))
    assert classifier.classify_box(hopper, (184, 120, 353, 334)).label == "no_mask"
