"""YuNet as a full-integer TFLite model (`models/face_detection_yunet_int8.tflite`, made from the
ONNX file by `maskdet-convert detector-int8`): on the Edge TPU when its `_edgetpu` twin lies
beside it, else on the CPU.

The model's input is fixed (480 x 288, a 16:9 frame at the detect width padded to a multiple of
32): the frame is shrunk to fit when it is larger (never enlarged) and padded at the bottom and
right, as YuNet pads every frame. The model takes BGR pixels as uint8 and gives, per stride,
sigmoid(cls) and sigmoid(obj) side by side ([1, N, 2]) and the box offsets ([1, N, 4]), found by
their shapes; they are dequantized and decoded by `yunet.decode`, as the float model's are.
"""
import logging

import numpy as np

from edge.errors import ModelError
from edge.inference import tensors
from edge.inference.accelerator import AcceleratedModel, AcceleratorSettings
from edge.inference.detectors.registry import DETECTORS, DetectorType, register
from edge.inference.detectors.yunet import DIVISOR, STRIDES, TOP_K, decode
from edge.inference.geometry import nms, shrink, to_faces

log = logging.getLogger(__name__)

MODEL_FILE = "face_detection_yunet_int8.tflite"
INPUT_WIDTH, INPUT_HEIGHT = 480, 288  # what the converter builds: 16:9 at width 480, padded
REMAKE = "use models/face_detection_yunet_int8.tflite or make one with `maskdet-convert detector-int8`"


def fit_input(frame_bgr, width, height):
    """(the frame shrunk to fit width x height, never enlarged, on a black canvas at its top
    left; the scale applied): the model's input, as calibration prepared it."""
    frame_h, frame_w = frame_bgr.shape[:2]
    scale = min(1.0, width / frame_w, height / frame_h)
    if scale < 1.0:
        new_w = min(width, max(1, round(frame_w * scale)))
        new_h = min(height, max(1, round(frame_h * scale)))
        frame_bgr = shrink(frame_bgr, new_w, new_h)
        scale = new_w / frame_w
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[:frame_bgr.shape[0], :frame_bgr.shape[1]] = frame_bgr
    return canvas, scale


def output_roles(output_details, width, height):
    """{stride: (scores details, boxes details)}: each output found by its shape, [1, cells, 2]
    for sigmoid(cls) and sigmoid(obj), [1, cells, 4] for the box offsets."""
    by_shape = {tuple(int(v) for v in d["shape"]): d for d in output_details}
    roles = {}
    for stride in STRIDES:
        cells = (width // stride) * (height // stride)
        scores, boxes = by_shape.get((1, cells, 2)), by_shape.get((1, cells, 4))
        if scores is None or boxes is None:
            shapes = sorted(by_shape)
            raise ModelError(f"its outputs {shapes} are not YuNet's scores [1, {cells}, 2] and "
                             f"boxes [1, {cells}, 4] at stride {stride} for a {width}x{height} input")
        roles[stride] = (scores, boxes)
    return roles


class YuNetInt8:
    """The int8 YuNet on an AcceleratedModel (the Edge TPU or its CPU twin)."""

    name = "yunet-int8"

    def __init__(self, interpreter, score_threshold=0.6, iou_threshold=0.3):
        self.interpreter = interpreter
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.height, self.width = tensors.input_size(interpreter)
        if self.height % DIVISOR or self.width % DIVISOR:
            raise ModelError(f"its input {self.width}x{self.height} is not a multiple of {DIVISOR}, "
                             "as YuNet needs")
        self.roles = output_roles(interpreter.get_output_details(), self.width, self.height)

    @classmethod
    def open(cls, model_path, accelerator=AcceleratorSettings(), score_threshold=0.6,
             iou_threshold=0.3):
        """Open the model (its `_edgetpu` twin when the accelerator settings say so); a file that
        is missing, not TFLite or not this YuNet is a ModelError naming it."""
        try:
            return cls(AcceleratedModel(model_path, accelerator), score_threshold, iou_threshold)
        except ModelError as exc:
            if str(model_path) in str(exc):
                raise
            raise ModelError(f"{model_path} is not an int8 YuNet model: {exc}; {REMAKE}") from exc

    @property
    def placement(self):
        """Where the model runs now (the Edge TPU or the CPU) and why."""
        return self.interpreter.placement

    def raw_outputs(self, image_bgr):
        """YuNet's outputs by name (cls_8, obj_8, bbox_8, ...), dequantized, for an input-sized
        uint8 BGR image."""
        tensors.set_image(self.interpreter, image_bgr, 0.0, 1.0)
        self.interpreter.invoke()
        outputs = {}
        for stride, (scores, boxes) in self.roles.items():
            both = tensors.output(self.interpreter, scores)
            outputs[f"cls_{stride}"], outputs[f"obj_{stride}"] = both[:, 0], both[:, 1]
            outputs[f"bbox_{stride}"] = tensors.output(self.interpreter, boxes)
        return outputs

    def detect(self, frame_bgr):
        """Faces in a BGR frame, boxes in frame pixels."""
        height, width = frame_bgr.shape[:2]
        image, scale = fit_input(frame_bgr, self.width, self.height)
        boxes, scores = decode(self.raw_outputs(image), self.width, self.score_threshold)
        keep = nms(boxes, scores, self.iou_threshold)[:TOP_K]
        return to_faces(boxes[keep] / scale, scores[keep], width, height)


def _open(model_path, settings, accelerator):
    detector = YuNetInt8.open(model_path, accelerator, settings.score_threshold,
                              settings.iou_threshold)
    log.info("int8 YuNet face detector (%dx%d) on %s: %s", detector.width, detector.height,
             detector.placement.accelerator, detector.interpreter.model_path)
    return detector


# The same network gives the same scores: its default threshold is the float YuNet's.
register(DetectorType(
    "yunet-int8", _open, default_model="{models}/" + MODEL_FILE,
    score_threshold=DETECTORS["yunet"].score_threshold, detect_width=INPUT_WIDTH,
    help="YuNet 2023 as a full-integer TFLite model (the shipped models/" + MODEL_FILE +
         "), on the Edge TPU when its _edgetpu build lies beside it, else the CPU"))
