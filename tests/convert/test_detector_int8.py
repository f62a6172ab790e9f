"""`maskdet-convert detector-int8`: the Keras rebuild of YuNet gives onnxruntime's raw outputs, the
quantized model finds the faces the float YuNet finds, its resize ops have no half-pixel centres,
and check-edgetpu finds it compatible, alone and beside the classifier. TensorFlow runs in
subprocesses only (imported here it would break tflite_runtime for the other tests)."""
import json
import os

import cv2
import pytest

from tests.conftest import REPO_ROOT, requires_tensorflow, run_cli, shared_path

CLASSIFIER = os.path.join(REPO_ROOT, "models", "mask_classifier_int8.tflite")
MAX_RAW_DIFFERENCE = 1e-4

# Builds the Keras rebuild and runs it and onnxruntime on the photos given, prepared as the
# detector prepares frames; prints {output: largest absolute difference} and the output count.
EQUALITY_PROBE = r"""
import json, sys
import numpy as np
from convert import detector_int8 as d
from edge.inference.images import read_image
raw, names = d.build_keras(sys.argv[1])
images = [d.prepared(read_image(p)) for p in sys.argv[2:]]
ours, theirs = d.keras_outputs(raw, names, images), d.onnxruntime_outputs(sys.argv[1], images)
print(json.dumps({"outputs": len(names), "largest": {
    n: max(float(np.max(np.abs(a[n] - b[n]))) for a, b in zip(ours, theirs)) for n in names},
    "largest_value": max(float(np.max(np.abs(b[n]))) for b in theirs for n in names)}))
"""


def onnx_file():
    return shared_path("models", "face_detection_yunet_2023mar.onnx")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The command run into a temporary folder: (model path, metadata, printed summary)."""
    requires_tensorflow()
    shared_path("data", "scenes_more", "ilc2021", "images")  # the calibration photos
    out = tmp_path_factory.mktemp("detector_int8")
    proc = run_cli("-m", "convert.cli", "detector-int8", "--out", str(out), "--onnx", onnx_file())
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    with open(out / "face_detection_yunet_int8.json", encoding="utf-8") as handle:
        meta = json.load(handle)
    return str(out / "face_detection_yunet_int8.tflite"), meta, summary


def test_the_keras_rebuild_gives_onnxruntimes_raw_outputs_on_real_photos():
    requires_tensorflow()
    photos = [shared_path("data", "images", "four_faces.jpg"),
              shared_path("data", "scenes", "images", sorted(os.listdir(
                  shared_path("data", "scenes", "images")))[0])]
    proc = run_cli("-c", EQUALITY_PROBE, onnx_file(), *photos)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["outputs"] == 12 and result["largest_value"] > 1.0  # real outputs, not zeros
    assert max(result["largest"].values()) < MAX_RAW_DIFFERENCE, result["largest"]


def test_the_command_records_the_check_and_its_calibration(made):
    path, meta, summary = made
    assert summary["model"] == path and summary["edgetpu_compatible"] is True
    assert max(meta["keras_vs_onnxruntime"]["max_abs_difference"].values()) < MAX_RAW_DIFFERENCE
    assert meta["source"]["sha256"] == "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
    photos = meta["calibration"]["photos"]
    assert len(set(photos)) == len(photos) == 200
    assert all(p.startswith("shared/data/scenes_more/") for p in photos)  # never data/scenes
    assert (meta["input"]["dtype"], meta["input"]["scale"], meta["input"]["zero_point"]) == ("uint8", 1.0, 0)
    assert os.path.getsize(path) < 10_000_000


def test_the_quantized_model_finds_the_faces_the_float_yunet_finds(made):
    from edge.inference.accelerator import AcceleratorSettings
    from edge.inference.detectors import DetectorSettings, create_detector
    from edge.inference.geometry import iou

    image = cv2.imread(shared_path("data", "images", "four_faces.jpg"))
    float_faces = create_detector(DetectorSettings("yunet", model=onnx_file())).detect(image)
    int8 = create_detector(DetectorSettings("yunet-int8", model=made[0]), AcceleratorSettings(mode="cpu"))
    int8_faces = int8.detect(image)
    assert len(float_faces) == len(int8_faces) == 4
    for face in float_faces:
        assert iou(face.box, [f.box for f in int8_faces]).max() > 0.8, (face, int8_faces)


def _resize_ops(path):
    """[(op name, align_corners, half_pixel_centers)] read from the flatbuffer."""
    import tflite

    with open(path, "rb") as handle:
        model = tflite.Model.GetRootAsModel(handle.read(), 0)
    graph, found = model.Subgraphs(0), []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == tflite.BuiltinOperator.RESIZE_NEAREST_NEIGHBOR:
            options = tflite.ResizeNearestNeighborOptions()
            options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            found.append(("RESIZE_NEAREST_NEIGHBOR", options.AlignCorners(), options.HalfPixelCenters()))
        elif builtin == tflite.BuiltinOperator.RESIZE_BILINEAR:
            found.append(("RESIZE_BILINEAR", None, None))
    return found


def test_its_resize_ops_are_nearest_without_half_pixel_centres(made):
    assert _resize_ops(made[0]) == [("RESIZE_NEAREST_NEIGHBOR", False, False)] * 2
    assert _resize_ops(os.path.join(REPO_ROOT, "models", "face_detection_yunet_int8.tflite")) == \
        [("RESIZE_NEAREST_NEIGHBOR", False, False)] * 2


@pytest.mark.parametrize("co_compile", [[], ["--co-compile", CLASSIFIER]], ids=["alone", "with-classifier"])
def test_check_edgetpu_says_compatible(made, co_compile):
    committed = os.path.join(REPO_ROOT, "models", "face_detection_yunet_int8.tflite")
    proc = run_cli("-m", "convert.cli", "check-edgetpu", "--json", made[0], committed, *co_compile)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    reports = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert len(reports) == 2
    for report in reports:
        assert report["compatible"] is True and report["findings"] == [], report
        assert report["ops"]["RESIZE_NEAREST_NEIGHBOR"] == 2
