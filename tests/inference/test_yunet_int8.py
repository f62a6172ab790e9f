"""The int8 YuNet (models/face_detection_yunet_int8.tflite) through its detector class: the faces
the float YuNet finds, its metadata, bad model files, and the Edge TPU path (the stand-in
libedgetpu, a copy of the model as its `_edgetpu` twin)."""
import json
import os

import cv2
import numpy as np
import pytest

from edge.errors import ModelError
from edge.inference.accelerator import AcceleratorSettings
from edge.inference.detectors import DetectorSettings, create_detector, default_model_key
from edge.inference.detectors.yunet_int8 import MODEL_FILE, YuNetInt8, fit_input
from edge.inference.geometry import iou
from edge.inference.model_meta import sha256_of
from tests.conftest import REPO_ROOT, shared_path
from tests.inference import edgetpu_stand_in
from tests.inference.edgetpu_stand_in import make_pair

stand_in_library, stand_in = edgetpu_stand_in.stand_in_library, edgetpu_stand_in.stand_in  # fixtures

MODEL = os.path.join(REPO_ROOT, "models", MODEL_FILE)
META = os.path.join(REPO_ROOT, "models", "face_detection_yunet_int8.json")
MIN_IOU = 0.8


def photo(name):
    return cv2.imread(shared_path("data", "images", name))


@pytest.fixture(scope="module")
def float_yunet():
    """The float YuNet as the daemon runs it (detect width 480), from the shared ONNX file."""
    model = shared_path("models", "face_detection_yunet_2023mar.onnx")
    return create_detector(DetectorSettings("yunet", model=model))


def assert_same_faces(faces, reference):
    """As many faces as the reference, each reference face matched by one at IoU > MIN_IOU."""
    assert len(faces) == len(reference), (faces, reference)
    for face in reference:
        overlaps = iou(face.box, [f.box for f in faces])
        assert overlaps.max() > MIN_IOU, (face, faces)


def test_metadata_matches_the_committed_model():
    with open(META, encoding="utf-8") as handle:
        meta = json.load(handle)
    assert meta["sha256"] == sha256_of(MODEL) and meta["size_bytes"] == os.path.getsize(MODEL)
    assert os.path.getsize(MODEL) < 10_000_000
    assert meta["source"]["sha256"] == "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
    assert (meta["input"]["width"], meta["input"]["height"]) == (480, 288)
    assert meta["input"]["dtype"] == "uint8" and meta["calibration"]["count"] == 200
    assert not any(p.startswith("shared/data/scenes/") for p in meta["calibration"]["photos"])


@pytest.mark.parametrize("name, count", [("four_faces.jpg", 4), ("grace_hopper.jpg", 1)])
def test_the_committed_model_finds_the_faces_the_float_yunet_finds(name, count, float_yunet):
    detector = YuNetInt8.open(MODEL, AcceleratorSettings(mode="cpu"))
    reference = float_yunet.detect(photo(name))
    assert len(reference) == count
    assert_same_faces(detector.detect(photo(name)), reference)


def test_create_detector_opens_the_shipped_model_by_its_type(float_yunet):
    settings = DetectorSettings(type="yunet-int8")
    assert default_model_key(settings) == os.path.join(REPO_ROOT, "models", MODEL_FILE)
    detector = create_detector(settings, AcceleratorSettings(mode="cpu"))
    assert detector.name == "yunet-int8" and detector.placement.accelerator == "cpu"
    assert detector.width == 480  # frames wider than the model's input are shrunk first
    image = cv2.resize(photo("four_faces.jpg"), (1024, 710))
    assert_same_faces(detector.detect(image), float_yunet.detect(image))


def test_the_frame_is_shrunk_to_fit_never_enlarged_and_padded_bottom_right():
    small = np.full((100, 200, 3), 7, np.uint8)
    image, scale = fit_input(small, 480, 288)
    assert scale == 1.0 and image.shape == (288, 480, 3)
    assert (image[:100, :200] == 7).all() and not image[100:].any() and not image[:, 200:].any()
    tall = np.full((600, 400, 3), 9, np.uint8)
    image, scale = fit_input(tall, 480, 288)
    assert scale == pytest.approx(288 / 600, abs=0.005)
    assert (image[:288, :192] == 9).all() and not image[:, 192:].any()


@pytest.mark.parametrize("content", [None, b"not a model at all", "classifier"],
                         ids=["missing", "garbage", "not-yunet"])
def test_a_bad_model_file_is_a_model_error_naming_it(content, tmp_path):
    path = tmp_path / "bad_yunet_int8.tflite"
    if content == "classifier":
        content = open(os.path.join(REPO_ROOT, "models", "mask_classifier_int8.tflite"), "rb").read()
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError) as info:
        YuNetInt8.open(str(path), AcceleratorSettings(mode="cpu"))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("behaviour, where", [("segv", "cpu"), ("ok", "edgetpu")])
def test_with_an_edgetpu_twin_it_runs_in_the_worker_or_falls_back_and_finds_the_faces(
        behaviour, where, stand_in, tmp_path, float_yunet):
    stand_in.behave(behaviour)
    cpu_model = make_pair(str(tmp_path / "models"), "face_detection_yunet_int8", source=MODEL)
    settings = DetectorSettings(type="yunet-int8", model=cpu_model)
    detector = create_detector(settings, AcceleratorSettings(mode="auto", threads=1))
    try:
        placement = detector.placement
        assert placement.accelerator == where, placement
        if where == "cpu":
            assert "SIGSEGV" in placement.reason
        assert len(stand_in.calls()) == 1  # the Edge TPU was tried, in a worker process
        image = photo("four_faces.jpg")
        assert_same_faces(detector.detect(image), float_yunet.detect(image))
    finally:
        detector.detector.interpreter.close()
