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


def test_tiny_faces_are_unknown_not_guessed_and_big_ones_still_classified(classifier):
    hopper = cv2.imread(shared_path("data", "images", "grace_hopper.jpg"))
    faces = [Face((10, 10, 30, 40), 0.9), Face((184, 120, 353, 334), 0.8)]
    pipeline = FaceMaskPipeline(FixedDetector(faces), classifier, min_face_size=32)
    result = pipeline.analyze(hopper)
    tiny, big = result.faces
    assert (tiny.label, tiny.score) == ("unknown", None)
    assert tiny.reason == "smaller than 32 px (20 px)"
    assert tiny.as_dict() == {"box": [10, 10, 30, 40], "label": "unknown", "score": None,
                              "face_score": 0.9, "reason": "smaller than 32 px (20 px)"}
    assert big.label == "no_mask" and 0.5 < big.score <= 1 and big.reason is None
    assert big.score == classifier.classify_box(hopper, (184, 120, 353, 334)).score
    assert "reason" not in big.as_dict()
    assert set(result.timings_ms) == {"detect", "classify"}


def test_a_face_that_cannot_be_cropped_is_unknown_with_the_reason(classifier):
    from edge.errors import DataError

    class Failing:
        placement = None

        def classify_boxes(self, frame, boxes):  # MaskClassifier's: a DataError per bad box
            return [DataError("box (5, 5, 5, 5) is empty") for _ in boxes]

    pipeline = FaceMaskPipeline(FixedDetector([Face((5, 5, 205, 205), 0.7)]), Failing(), 32)
    (face,) = pipeline.analyze(np.zeros((300, 300, 3), np.uint8)).faces
    assert (face.label, face.score, face.reason) == ("unknown", None, "box (5, 5, 5, 5) is empty")


def test_a_masked_face_is_mask_and_grace_hopper_no_mask(classifier):
    masked = cv2.imread(shared_path("data", "faces", "with_mask", "with_mask_0001.jpg"))
    assert classifier.classify(as_rgb(masked)).label == "mask"
    hopper = cv2.imread(shared_path("data", "images", "grace_hopper.jpg"))
    assert classifier.classify_box(hopper, (184, 120, 353, 334)).label == "no_mask"


def test_native_info_lines_are_logged_and_other_lines_reach_stderr_unchanged(capfd, caplog):
    # (the runtime prints its XNNPACK line once per process: `maskdet` is checked for it in
    # tests/test_cli.py, in fresh processes)
    import logging
    import os

    from edge.inference.runtime import native_stderr_filtered

    with caplog.at_level(logging.DEBUG, logger="edge.inference.runtime"):
        with native_stderr_filtered():
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
            os.write(2, b"ERROR: something the user must see\nno newline at the end")
    assert capfd.readouterr().err == "ERROR: something the user must see\nno newline at the end"
    assert [r.getMessage() for r in caplog.records] == \
        ["TFLite: Created TensorFlow Lite XNNPACK delegate for CPU."]
    os.write(2, b"after\n")  # file descriptor 2 is back
    assert capfd.readouterr().err == "after\n"

def test_a_face_result_carries_the_classifiers_no_mask_score_for_either_label(classifier):
    hopper = cv2.imread(shared_path("data", "images", "grace_hopper.jpg"))
    masked = cv2.imread(shared_path("data", "faces", "with_mask", "with_mask_0001.jpg"))
    height, width = masked.shape[:2]
    frames = {"no_mask": (hopper, (184, 120, 353, 334)),
              "mask": (masked, (width * 0.15, height * 0.15, width * 0.85, height * 0.85))}
    for label, (frame, box) in frames.items():
        pipeline = FaceMaskPipeline(FixedDetector([Face(box, 0.9)]), classifier, min_face_size=32)
        face, = pipeline.analyze(frame).faces
        answer = classifier.classify_box(frame, box)
        assert face.label == answer.label == label
        assert face.no_mask_score == pytest.approx(answer.no_mask_score)
    unknown, = FaceMaskPipeline(FixedDetector([Face((10, 10, 30, 40), 0.9)]), classifier,
                                min_face_size=32).analyze(hopper).faces
    assert unknown.no_mask_score is None
