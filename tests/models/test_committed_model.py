"""The shipped classifier: loads without TensorFlow, matches its metadata, gets known faces right."""
import json
import os

import pytest

from tests.conftest import REPO_ROOT, run_cli, shared_path

META = os.path.join(REPO_ROOT, "models", "mask_classifier.json")

# Runs in a fresh interpreter so that TensorFlow, imported by other tests, cannot leak in.
PROBE = r"""
import json, sys
import cv2
from edge.inference.classifier import MaskClassifier, as_rgb
from edge.inference import tensors
clf = MaskClassifier.open(sys.argv[1])
out = {"tensorflow_imported": "tensorflow" in sys.modules,
       "input": tensors.input_details(clf.interpreter)["quantization"],
       "input_shape": tensors.input_details(clf.interpreter)["shape"].tolist(),
       "results": {}}
for path in sys.argv[2:]:
    c = clf.classify(as_rgb(cv2.imread(path)))
    out["results"][path] = [c.label, c.score]
print(json.dumps(out))
"""


def classify(*images):
    proc = run_cli("-c", PROBE, META, *images)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_metadata_is_complete_and_matches_the_model_file():
    from edge.inference.model_meta import load_classifier_meta, sha256_of

    meta = load_classifier_meta(META)
    assert sha256_of(meta.model_path) == meta.sha256
    assert os.path.getsize(meta.model_path) < 3_000_000
    with open(META) as f:
        raw = json.load(f)
    for key in ("metrics", "data", "tools", "threshold", "selection"):
        assert key in raw, key
    assert raw["labels"] == ["mask", "no_mask"]
    assert raw["input"]["quantization"]["dtype"] == "uint8"
    assert raw["output"]["quantization"]["dtype"] == "uint8"


def test_model_loads_without_tensorflow_and_matches_its_metadata():
    with open(META) as f:
        raw = json.load(f)
    out = classify()
    assert out["tensorflow_imported"] is False
    size = raw["input"]["size"]
    assert out["input_shape"] == [1, size, size, 3]
    scale, zero_point = out["input"]
    assert scale == pytest.approx(raw["input"]["quantization"]["scale"])
    assert zero_point == raw["input"]["quantization"]["zero_point"]


def test_grace_hopper_is_no_mask_and_a_masked_face_is_mask():
    hopper = shared_path("data", "images", "grace_hopper.jpg")
    masked = shared_path("data", "faces", "with_mask", "with_mask_0001.jpg")
    results = classify(hopper, masked)["results"]
    assert results[hopper][0] == "no_mask", results
    assert results[masked][0] == "mask", results


def test_the_shipped_metadata_follows_its_schema_and_holds_no_absolute_path():
    pytest.importorskip("jsonschema")
    from convert.run_folder import validate_metadata

    with open(META, encoding="utf-8") as handle:
        validate_metadata(json.load(handle), META)
