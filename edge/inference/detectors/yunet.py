"""YuNet (ONNX), run by onnxruntime where it is installed, else by OpenCV's cv2.FaceDetectorYN.

Both engines feed the frame the same way (BGR pixels 0-255, padded right and bottom to a multiple
of 32) and decode the same way (OpenCV's face_detect.cpp): score = sqrt(cls * obj), box centre
= (cell + offset) * stride, box size = exp(log size) * stride, then greedy NMS. onnxruntime runs
the network about twice as fast as OpenCV's DNN module on one core (BENCHMARKS.md).
"""
import functools
import importlib
import importlib.util
import logging

import cv2
import numpy as np

from edge.errors import ConfigError, ModelError
from edge.inference.accelerator import CPU
from edge.inference.detectors.registry import DetectorType, register
from edge.inference.geometry import nms, to_faces

log = logging.getLogger(__name__)

ENGINES = ("auto", "onnxruntime", "opencv")
STRIDES = (8, 16, 32)
DIVISOR = 32
TOP_K = 500


def padded(length):
    """The input length YuNet runs at: `length` rounded up to a multiple of 32."""
    return (length + DIVISOR - 1) // DIVISOR * DIVISOR


def decode(outputs, pad_width, score_threshold):
    """(boxes [N, 4] x1 y1 x2 y2, scores [N]) of the cells at or above the threshold.

    `outputs` maps YuNet's output names (cls_8, obj_8, bbox_8, ... for strides 8, 16, 32) to arrays.
    """
    boxes, scores = [], []
    for stride in STRIDES:
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0.0, 1.0)
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0.0, 1.0)
        score = np.sqrt(cls * obj)
        cells = np.nonzero(score >= score_threshold)[0]
        if not cells.size:
            continue
        offsets = outputs[f"bbox_{stride}"].reshape(-1, 4)[cells].astype(np.float64)
        cols = pad_width // stride
        cx = (cells % cols + offsets[:, 0]) * stride
        cy = (cells // cols + offsets[:, 1]) * stride
        w, h = np.exp(offsets[:, 2]) * stride, np.exp(offsets[:, 3]) * stride
        boxes.append(np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
        scores.append(score[cells].astype(np.float64))
    if not boxes:
        return np.zeros((0, 4)), np.zeros(0)
    return np.concatenate(boxes), np.concatenate(scores)


class OnnxRuntimeYuNet:
    """YuNet through onnxruntime, with the decoding above in numpy."""

    name = "yunet"
    engine = "onnxruntime"
    placement = CPU

    def __init__(self, model_path, score_threshold=0.6, iou_threshold=0.3, num_threads=None):
        import onnxruntime

        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        model = any_size_model(model_path)
        try:
            self._session = onnxruntime.InferenceSession(model, options,
                                                         providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnx and onnxruntime raise their own types for bad files
            raise ModelError(f"{model_path} cannot be opened as an ONNX model: {_one_line(exc)}") from exc
        self._input_name = self._session.get_inputs()[0].name
        self._output_names = [o.name for o in self._session.get_outputs()]
        expected = {f"{kind}_{stride}" for kind in ("cls", "obj", "bbox") for stride in STRIDES}
        if not expected <= set(self._output_names):
            raise ModelError(f"{model_path} is not a YuNet 2023 model: its outputs are "
                             f"{sorted(self._output_names)}, not cls/obj/bbox at strides 8, 16, 32; "
                             "use face_detection_yunet_2023mar.onnx or set detector.engine: opencv")

    def detect(self, frame_bgr):
        """Faces in a BGR frame, boxes in frame pixels."""
        height, width = frame_bgr.shape[:2]
        pad_width, pad_height = padded(width), padded(height)
        blob = np.zeros((1, 3, pad_height, pad_width), np.float32)
        blob[0, :, :height, :width] = frame_bgr.transpose(2, 0, 1)
        outputs = dict(zip(self._output_names, self._session.run(None, {self._input_name: blob})))
        boxes, scores = decode(outputs, pad_width, self.score_threshold)
        keep = nms(boxes, scores, self.iou_threshold)[:TOP_K]
        return to_faces(boxes[keep], scores[keep], width, height)


def any_size_model(model_path):
    """The YuNet ONNX file as bytes whose input takes any height and width.

    The file declares a 640 x 640 input, but its graph has no fixed size in it (reshapes to -1,
    resizes by scale), so the two dimensions are made symbolic and the stale shapes it records for
    outputs and intermediate tensors are dropped: one session serves every frame size."""
    import onnx

    try:
        model = onnx.load(str(model_path))
    except Exception as exc:  # protobuf's DecodeError, OSError ...
        raise ModelError(f"{model_path} cannot be opened as an ONNX model: {_one_line(exc)}") from exc
    if not model.graph.input:
        raise ModelError(f"{model_path} is not a YuNet model: its graph has no input")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ModelError(f"{model_path} is not a YuNet model: its input has {len(dims)} "
                         "dimensions, YuNet takes an image [1, 3, H, W]; use "
                         "face_detection_yunet_2023mar.onnx (`maskdet models fetch yunet`)")
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        output.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]
    return model.SerializeToString()


class OpenCVYuNet:
    """YuNet through OpenCV's DNN module (`cv2.FaceDetectorYN`), which decodes it itself."""

    name = "yunet"
    engine = "opencv"
    placement = CPU

    def __init__(self, model_path, score_threshold=0.6, iou_threshold=0.3):
        try:
            self._detector = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320),
                                                       score_threshold, iou_threshold, TOP_K)
        except cv2.error as exc:
            raise ModelError(f"{model_path} cannot be opened as a YuNet model by OpenCV: "
                             f"{_one_line(exc)}") from exc
        self._input_size = (320, 320)
        # OpenCV reads any ONNX file here and only fails at the first frame: run one small blank
        # frame now so that a file that is not YuNet is found when the detector is opened.
        try:
            self.detect(np.zeros((DIVISOR, DIVISOR, 3), np.uint8))
        except cv2.error as exc:
            raise ModelError(f"{model_path} is not a YuNet model OpenCV can run: "
                             f"{_one_line(exc)}; use face_detection_yunet_2023mar.onnx "
                             "(`maskdet models fetch yunet`)") from exc

    def detect(self, frame_bgr):
        """Faces in a BGR frame, boxes in frame pixels."""
        height, width = frame_bgr.shape[:2]
        if (width, height) != self._input_size:
            self._detector.setInputSize((width, height))
            self._input_size = (width, height)
        _, rows = self._detector.detect(frame_bgr)
        if rows is None:
            return []
        rows = np.asarray(rows, dtype=np.float64)
        boxes = np.column_stack([rows[:, 0], rows[:, 1], rows[:, 0] + rows[:, 2], rows[:, 1] + rows[:, 3]])
        return to_faces(boxes, rows[:, 14], width, height)


def _one_line(exc):
    """An exception's text on one line (OpenCV's and onnxruntime's span several)."""
    return " ".join(str(exc).split())


@functools.lru_cache(maxsize=None)
def onnxruntime_problem():
    """None when onnxruntime and onnx import here, else why not (not installed, or installed but
    broken: a wheel for another CPU, a missing system library)."""
    for name in ("onnxruntime", "onnx"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed"
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a broken native library raises anything
            return f"{name} cannot be imported ({type(exc).__name__}: {_one_line(exc)})"
    return None


def open_yunet(model_path, engine="auto", score_threshold=0.6, iou_threshold=0.3, num_threads=None):
    """A YuNet detector on the chosen engine; `auto` takes onnxruntime when it is installed."""
    if engine not in ENGINES:
        raise ConfigError(f"detector engine {engine!r} is not one of {', '.join(ENGINES)}")
    problem = onnxruntime_problem() if engine in ("auto", "onnxruntime") else None
    if engine == "auto":
        if problem and importlib.util.find_spec("onnxruntime") is not None:
            log.warning("YuNet runs on OpenCV: %s", problem)  # installed but broken: say so
        engine = "opencv" if problem else "onnxruntime"
    if engine == "onnxruntime":
        if problem:
            raise ConfigError(f"detector engine onnxruntime: {problem}; pip install onnxruntime "
                              "onnx, or set detector.engine: opencv")
        detector = OnnxRuntimeYuNet(model_path, score_threshold, iou_threshold, num_threads)
    else:
        detector = OpenCVYuNet(model_path, score_threshold, iou_threshold)
    log.info("YuNet face detector on %s: %s", engine, model_path)
    return detector


def _open(model_path, settings, accelerator):
    return open_yunet(model_path, settings.engine, settings.score_threshold, settings.iou_threshold,
                      accelerator.threads)


# The default threshold, by `maskdet bench --decisions` on the held-out scenes and the shared
# videos: at 0.5 rather than 0.7, masked faces of 24-48 px are found 0.87 of the time instead of
# 0.79 and of 48-96 px 0.96 instead of 0.92, for 0.05 more false faces per photo that are big
# enough to classify (about half of them real faces nobody annotated) and no false face on the
# videos that lasts the frames a decision needs.
register(DetectorType(
    "yunet", _open, default_model="yunet", score_threshold=0.5, detect_width=480,
    help="YuNet 2023 (ONNX; finds masked faces best), on onnxruntime or OpenCV"))
