"""MediaPipe BlazeFace (short range 128 px, full range 192 px) as TFLite: SSD anchors decoded
and weighted non-maximum suppression done here in numpy, as MediaPipe's calculators do."""
import numpy as np

from edge.errors import ModelError
from edge.inference import tensors
from edge.inference.detectors.registry import DetectorType, register
from edge.inference.geometry import letterbox, to_faces, weighted_nms

# MediaPipe's SsdAnchorsCalculator options for each model (fixed anchor size: w = h = 1).
VARIANTS = {
    "short": {"size": 128, "strides": (8, 16, 16, 16), "interpolated": True},
    "full": {"size": 192, "strides": (4,), "interpolated": False},
}


def anchors(size, strides, interpolated):
    """[N, 2] anchor centres (x, y) in 0..1: layers of equal stride share a grid, with two anchors
    per layer and cell when an interpolated scale is used, one otherwise."""
    out = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        per_cell = 0
        while layer < len(strides) and strides[layer] == stride:
            per_cell += 2 if interpolated else 1
            layer += 1
        cells = int(np.ceil(size / stride))
        for y in range(cells):
            for x in range(cells):
                out += [((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell
    return np.array(out, dtype=np.float64)


def decode(regressors, logits, anchor_xy, size, score_threshold):
    """Raw outputs -> ([K, 4] boxes as x1, y1, x2, y2 in 0..1 of the input, [K] scores)."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits, np.float64).reshape(-1), -100, 100)))
    keep = scores >= score_threshold
    raw = np.asarray(regressors, np.float64).reshape(len(anchor_xy), -1)[keep]
    centres = raw[:, :2] / size + anchor_xy[keep]
    half = raw[:, 2:4] / size / 2.0
    return np.hstack([centres - half, centres + half]), scores[keep]


class BlazeFaceDetector:
    """Face detector over a BlazeFace TFLite model, on any runtime or the Edge TPU."""

    name = "blazeface"

    @property
    def placement(self):
        """Where the model runs now (the Edge TPU or the CPU) and why."""
        return self.interpreter.placement

    def __init__(self, interpreter, variant="full", score_threshold=0.5, iou_threshold=0.3):
        spec = VARIANTS[variant]
        self.interpreter = interpreter
        self.size = spec["size"]
        height, width = tensors.input_size(interpreter)
        if (height, width) != (self.size, self.size):
            raise ModelError(f"BlazeFace {variant}-range takes {self.size}x{self.size}, the model "
                             f"takes {width}x{height}: set the detector's variant to match")
        self.anchor_xy = anchors(self.size, spec["strides"], spec["interpolated"])
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        outputs = sorted(interpreter.get_output_details(), key=lambda d: d["shape"][-1])
        shapes = [[int(v) for v in d["shape"]] for d in outputs]
        n = len(self.anchor_xy)
        if len(outputs) != 2 or shapes[0][-2:] != [n, 1] or len(shapes[1]) < 2 or \
                shapes[1][-2] != n or shapes[1][-1] < 4:
            raise ModelError(f"not a BlazeFace {variant}-range model: its outputs are {shapes}, "
                             f"BlazeFace gives [1, {n}, 16] boxes and [1, {n}, 1] scores")
        self.logits_out, self.regressors_out = outputs[0], outputs[-1]

    def detect(self, frame_bgr):
        """Faces in a BGR frame, boxes in frame pixels."""
        square, box_map = letterbox(frame_bgr, self.size)
        tensors.set_image(self.interpreter, square[..., ::-1], 127.5, 127.5)
        self.interpreter.invoke()
        regressors = tensors.output(self.interpreter, self.regressors_out)
        logits = tensors.output(self.interpreter, self.logits_out)
        boxes, scores = decode(regressors, logits, self.anchor_xy, self.size, self.score_threshold)
        if not len(scores):
            return []
        boxes, scores = weighted_nms(boxes, scores, self.iou_threshold)
        height, width = frame_bgr.shape[:2]
        return to_faces(box_map.to_frame(boxes), scores, width, height)


def _open(model_path, settings, accelerator):
    from edge.inference.accelerator import AcceleratedModel

    try:
        return BlazeFaceDetector(AcceleratedModel(model_path, accelerator), settings.variant,
                                 settings.score_threshold, settings.iou_threshold)
    except ModelError as exc:
        if str(model_path) in str(exc):
            raise
        raise ModelError(f"{model_path}: {exc}") from exc


register(DetectorType(
    "blazeface", _open, default_model="blazeface_{variant}", score_threshold=0.5, detect_width=0,
    help="MediaPipe BlazeFace, full range (1-5 m) or short range (within 2 m); CPU or Edge TPU"))
