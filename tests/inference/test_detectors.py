"""Each detector backend on real photos, and the pure decoders on hand-made outputs."""
import glob

import cv2
import numpy as np
import pytest

from edge.inference.detectors import DetectorSettings, DownscaledDetector, create_detector
from edge.inference.detectors import blazeface, res10, ssd, yunet
from edge.errors import ConfigError, FetchError, ModelError
from edge.inference.geometry import Face, iou
from tests.conftest import run_cli, shared_path

FOUR_FACES_CENTRES = [(303, 115), (178, 147), (28, 133), (467, 152)]  # read off the photo


def four_faces():
    return cv2.imread(shared_path("data", "images", "four_faces.jpg"))


def detector_or_skip(settings):
    try:
        return create_detector(settings)
    except FetchError as exc:
        pytest.skip(f"{exc}")


@pytest.mark.parametrize("settings", [
    DetectorSettings("blazeface", variant="full"),
    DetectorSettings("yunet", score_threshold=0.7, engine="onnxruntime"),
    DetectorSettings("yunet", score_threshold=0.7, engine="opencv"),
    DetectorSettings("res10"),
], ids=["blazeface-full", "yunet-onnxruntime", "yunet-opencv", "res10"])
def test_each_backend_finds_the_four_faces(settings):
    faces = detector_or_skip(settings).detect(four_faces())
    assert len(faces) == 4
    for cx, cy in FOUR_FACES_CENTRES:
        assert any(f.box[0] < cx < f.box[2] and f.box[1] < cy < f.box[3] for f in faces), (cx, cy)


def test_yunet_engines_agree_on_real_scenes():
    """onnxruntime with the numpy decoding finds the boxes OpenCV's own YuNet finds."""
    settings = {"score_threshold": 0.7, "detect_width": 0}
    onnx_engine = detector_or_skip(DetectorSettings("yunet", engine="onnxruntime", **settings))
    opencv_engine = detector_or_skip(DetectorSettings("yunet", engine="opencv", **settings))
    assert (onnx_engine.engine, opencv_engine.engine) == ("onnxruntime", "opencv")
    scenes = shared_path("data", "scenes", "images")
    photos = sorted(glob.glob(f"{scenes}/*.jpg"))[:12]
    total = 0
    for photo in photos + [shared_path("data", "images", "four_faces.jpg")]:
        image = cv2.imread(photo)
        ours, theirs = onnx_engine.detect(image), opencv_engine.detect(image)
        assert len(ours) == len(theirs), photo
        for face in theirs:
            best = max(ours, key=lambda f: iou(face.box, [f.box])[0])
            assert iou(face.box, [best.box])[0] > 0.99 and best.score == pytest.approx(face.score, abs=1e-3)
        total += len(theirs)
    assert total >= 20


def test_yunet_decode_places_a_box_on_its_cell():
    """One cell of the stride-16 grid of a 64 x 32 input: row 1, column 2."""
    outputs = {f"{kind}_{s}": np.zeros((1, (64 // s) * (32 // s), width))
               for s in yunet.STRIDES for kind, width in (("cls", 1), ("obj", 1), ("bbox", 4))}
    cell = 1 * (64 // 16) + 2
    outputs["cls_16"][0, cell, 0], outputs["obj_16"][0, cell, 0] = 0.81, 1.0
    outputs["bbox_16"][0, cell] = [0.5, 0.25, np.log(2.0), 0.0]
    outputs["cls_8"][0, 0, 0], outputs["obj_8"][0, 0, 0] = 0.25, 0.25  # score 0.25: below
    boxes, scores = yunet.decode(outputs, 64, 0.5)
    assert scores.tolist() == pytest.approx([0.9])
    # centre ((2 + 0.5) * 16, (1 + 0.25) * 16) = (40, 20), size 32 x 16
    assert boxes.tolist() == [pytest.approx([24, 12, 56, 28])]


def test_yunet_input_is_padded_to_multiples_of_32():
    assert [yunet.padded(n) for n in (1, 32, 33, 270, 480)] == [32, 32, 64, 288, 480]


def test_yunet_on_onnxruntime_refuses_an_onnx_file_of_another_shape(tmp_path):
    pytest.importorskip("onnx")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["scores"])], "other",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3, 32, 32])])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 13)]),
              str(path))
    with pytest.raises(ModelError, match="other.onnx is not a YuNet 2023 model"):
        yunet.OnnxRuntimeYuNet(path)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="garbage.onnx cannot be opened as an ONNX model"):
        yunet.OnnxRuntimeYuNet(garbage)


def test_yunet_engine_choice_and_errors():
    model = shared_path("models", "face_detection_yunet_2023mar.onnx")
    with pytest.raises(ConfigError, match="engine 'tpu' is not one of auto, onnxruntime, opencv"):
        yunet.open_yunet(model, "tpu")


def test_a_broken_onnxruntime_falls_back_to_opencv_or_is_named(tmp_path):
    """In a process where onnxruntime is installed but cannot be imported (a wheel for another
    CPU, a missing system library): auto runs YuNet on OpenCV and says why; asking for
    onnxruntime is a config error naming the cause."""
    model = shared_path("models", "face_detection_yunet_2023mar.onnx")
    broken = tmp_path / "onnxruntime"  # found on the path, fails on import, as a bad wheel does
    broken.mkdir()
    (broken / "__init__.py").write_text(
        "raise ImportError('libgomp.so.1: cannot open shared object file')\n")
    code = (f"import sys, logging; logging.basicConfig(); sys.path.insert(0, {str(tmp_path)!r})\n"
            "from edge.errors import ConfigError\n"
            "from edge.inference.detectors import yunet\n"
            f"print(yunet.open_yunet({model!r}, 'auto').engine)\n"
            "try:\n"
            f"    yunet.open_yunet({model!r}, 'onnxruntime')\n"
            "except ConfigError as exc:\n"
            "    print('refused:', exc)\n")
    proc = run_cli("-c", code)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "opencv" and "YuNet runs on OpenCV: onnxruntime cannot be imported" in proc.stderr
    assert lines[1].startswith("refused: detector engine onnxruntime: onnxruntime cannot be imported")


def test_blazeface_anchor_counts_match_the_models():
    assert len(blazeface.anchors(128, (8, 16, 16, 16), True)) == 896
    assert len(blazeface.anchors(192, (4,), False)) == 2304


def test_blazeface_decode_places_a_box_on_its_anchor():
    anchor_xy = np.array([[0.25, 0.75], [0.5, 0.5]])
    regressors = np.zeros((2, 16))
    regressors[0, :4] = [12.8, 0, 25.6, 12.8]  # shift 0.1 right, 0.2 x 0.1 in a 128 input
    boxes, scores = blazeface.decode(regressors, np.array([[3.0], [-3.0]]), anchor_xy, 128, 0.5)
    assert scores.tolist() == pytest.approx([1 / (1 + np.exp(-3))])
    assert boxes[0].tolist() == pytest.approx([0.25, 0.7, 0.45, 0.8])


def test_blazeface_rejects_a_model_of_the_other_variant():
    full_range = detector_or_skip(DetectorSettings("blazeface", variant="full"))
    with pytest.raises(ModelError, match="short-range takes 128x128"):
        blazeface.BlazeFaceDetector(full_range.interpreter, "short")


def test_res10_decode_scales_and_filters():
    rows = np.array([[0, 1, 0.9, 0.1, 0.2, 0.3, 0.4], [0, 1, 0.2, 0, 0, 1, 1]]).reshape(1, 1, 2, 7)
    boxes, scores = res10.decode(rows, 200, 100, 0.5)
    assert boxes[0].tolist() == pytest.approx([20, 20, 60, 40]) and len(boxes) == 1 and scores.tolist() == [0.9]


def test_ssd_postprocess_outputs_are_decoded_by_count_and_threshold():
    boxes = np.array([[[0.1, 0.2, 0.5, 0.6], [0, 0, 1, 1], [0.2, 0.2, 0.3, 0.3]]])
    out, scores = ssd.decode(boxes, np.array([[0.9, 0.3, 0.8]]), np.array([2.0]), 100, 50, 0.5)
    assert out[0].tolist() == pytest.approx([20, 5, 60, 25]) and len(out) == 1 and scores.tolist() == [0.9]


def test_ssd_output_roles_follow_the_op_output_names():
    details = [{"name": "TFLite_Detection_PostProcess:3", "shape": np.array([1])},
               {"name": "TFLite_Detection_PostProcess", "shape": np.array([1, 50, 4])},
               {"name": "TFLite_Detection_PostProcess:2", "shape": np.array([1, 50])},
               {"name": "TFLite_Detection_PostProcess:1", "shape": np.array([1, 50])}]
    roles = ssd.output_roles(details)
    assert roles["boxes"]["name"] == "TFLite_Detection_PostProcess"
    assert roles["scores"]["name"].endswith(":2") and roles["count"]["name"].endswith(":3")
    with pytest.raises(ModelError, match="4 outputs"):
        ssd.output_roles(details[:2])


def test_downscaled_detection_maps_boxes_back_to_the_full_frame():
    class Recorder:
        name = "recorder"

        def detect(self, frame):
            self.shape = frame.shape
            return [Face((10.0, 10.0, 20.0, 20.0), 0.9)]

    inner = Recorder()
    faces = DownscaledDetector(inner, 320).detect(np.zeros((720, 1280, 3), np.uint8))
    assert inner.shape == (180, 320, 3)
    assert faces[0].box == pytest.approx((40.0, 40.0, 80.0, 80.0))


def test_unknown_detector_type_and_missing_ssd_model_are_config_errors():
    with pytest.raises(ConfigError, match="not one of"):
        create_detector(DetectorSettings("haar"))
    with pytest.raises(ConfigError, match="needs a model file"):
        create_detector(DetectorSettings("ssd"))
