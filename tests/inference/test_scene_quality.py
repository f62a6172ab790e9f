"""The default detector + the shipped classifier on the held-out scene photos: floors set from
the measurement in BENCHMARKS.md, a little below it, so that a regression fails."""
import pytest

from edge.bench.latency import single_thread_pipeline
from edge.bench.scene_quality import evaluate_pipeline
from edge.inference.detectors import DetectorSettings
from edge.paths import default_classifier
from tests.conftest import annotated_faces, shared_path

FLOORS = {"recall": {"mask": 0.85, "no_mask": 0.85}, "accuracy": {"mask": 0.95, "no_mask": 0.88},
          "balanced_accuracy": 0.93}


@pytest.fixture(scope="module")
def quality():
    annotations = shared_path("data", "scenes", "annotations.json")
    pipeline = single_thread_pipeline(DetectorSettings(), default_classifier(), "ai_edge_litert")
    return evaluate_pipeline(pipeline, annotations, min_side=32)


@pytest.mark.parametrize("group", ["mask", "no_mask"])
def test_faces_of_32_px_and_more_are_found(quality, group):
    assert quality["recall"][group] >= FLOORS["recall"][group], quality


@pytest.mark.parametrize("group", ["mask", "no_mask"])
def test_found_faces_are_labelled_right(quality, group):
    assert quality["accuracy"][group] >= FLOORS["accuracy"][group], quality


def test_balanced_accuracy_of_the_labels(quality):
    assert quality["faces"] == annotated_faces(shared_path("data", "scenes", "annotations.json"), 32)
    assert quality["balanced_accuracy"] >= FLOORS["balanced_accuracy"], quality
