"""The hook that reads the Edge TPU's counters for stats and /metrics: whatever the pipeline
gives (or fails to give) becomes a clean dict or nothing, never an error in the frame loop."""
import jsonschema
import pytest

from edge.service import payloads
from edge.service.daemon import accelerator_counters, model_version


class Pipeline:
    def __init__(self, read):
        self.accelerator_counters = read


def test_the_counters_are_cleaned_to_the_stats_schema():
    pipeline = Pipeline(lambda: {
        "mask_classifier_int8_edgetpu.tflite": {"accelerator": "cpu", "fallbacks": 2, "recoveries": 1,
                                                "cpu_seconds": 12.5, "tpu_restarts": 3,
                                                "worker_pid": 4242, "future_field": "x"},
        "face_detector.tflite": {"accelerator": "quantum", "fallbacks": True, "tpu_restarts": -1,
                                 "cpu_seconds": "lots", "worker_pid": "1"},
        "odd": "not a dict"})
    counters = accelerator_counters(pipeline)
    assert counters == {
        "mask_classifier_int8_edgetpu.tflite": {"accelerator": "cpu", "fallbacks": 2,
                                                "recoveries": 1, "cpu_seconds": 12.5,
                                                "tpu_restarts": 3, "worker_pid": 4242},
        "face_detector.tflite": {"worker_pid": None}}
    jsonschema.validate(payloads.stats({}, {}, 0, 0, 1.0, accelerator=counters),
                        payloads.load_schema("stats"))


def test_no_counters_or_a_failure_is_nothing():
    assert accelerator_counters(object()) == {}

    def boom():
        raise RuntimeError("worker gone")

    assert accelerator_counters(Pipeline(boom)) == {}
    assert accelerator_counters(Pipeline(lambda: None)) == {}


def test_the_model_version_names_the_file_and_its_hash():
    class Meta:
        model_file, sha256 = "mask_classifier_int8.tflite", "8dea35b8b9186b40e535"

    class Classifier:
        meta = Meta()

    class WithClassifier:
        classifier = Classifier()

    assert model_version(WithClassifier()) == "mask_classifier_int8.tflite@8dea35b8b918"
    assert model_version(object()) == "unknown"


def test_a_pairs_version_names_both_models():
    """Replacing either model of a pair is another version (the shipped pair, as loaded)."""
    from edge.inference.model_meta import load_classifier_meta
    from edge.paths import default_classifier

    meta = load_classifier_meta(default_classifier())
    if meta.second_opinion is None:
        pytest.skip("the shipped classifier has no second opinion")

    class WithClassifier:
        class classifier:
            pass

    WithClassifier.classifier.meta = meta
    assert model_version(WithClassifier()) == (
        f"{meta.model_file}@{meta.sha256[:12]}+"
        f"{meta.second_opinion.model_file}@{meta.second_opinion.sha256[:12]}")
