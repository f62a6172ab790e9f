"""OpenCV's ResNet-10 SSD face detector (Caffe, `cv2.dnn`), the best-known mask project's detector."""
import cv2
import numpy as np

from edge.errors import ModelError
from edge.inference.accelerator import CPU
from edge.inference.detectors.registry import DetectorType, register
from edge.inference.geometry import nms, to_faces

INPUT_SIZE = 300
MEAN_BGR = (104.0, 177.0, 123.0)


def decode(detections, width, height, score_threshold):
    """The net's [1, 1, N, 7] output -> ([K, 4] pixel boxes, [K] scores) above the threshold."""
    rows = np.asarray(detections, dtype=np.float64).reshape(-1, 7)
    rows = rows[rows[:, 2] >= score_threshold]
    return rows[:, 3:7] * np.array([width, height, width, height]), rows[:, 2]


class Res10Detector:
    """Face detector over res10_300x300_ssd (Caffe prototxt + caffemodel), CPU only."""

    name = "res10"
    placement = CPU

    def __init__(self, prototxt, caffemodel, score_threshold=0.5, iou_threshold=0.3):
        try:
            self._net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
        except cv2.error as exc:
            raise ModelError(f"{caffemodel} (with the graph {prototxt}) cannot be opened as the "
                             f"res10 Caffe model: {' '.join(str(exc).split())}; use "
                             "res10_300x300_ssd_iter_140000.caffemodel (`maskdet models fetch "
                             "res10_caffemodel`)") from exc
        if self._net.empty():
            raise ModelError(f"{caffemodel} (with the graph {prototxt}) holds no network: use "
                             "res10_300x300_ssd_iter_140000.caffemodel")
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold

    def detect(self, frame_bgr):
        """Faces in a BGR frame, boxes in frame pixels."""
        height, width = frame_bgr.shape[:2]
        blob = cv2.dnn.blobFromImage(cv2.resize(frame_bgr, (INPUT_SIZE, INPUT_SIZE)), 1.0,
                                     (INPUT_SIZE, INPUT_SIZE), MEAN_BGR)
        self._net.setInput(blob)
        boxes, scores = decode(self._net.forward(), width, height, self.score_threshold)
        keep = nms(boxes, scores, self.iou_threshold)
        return to_faces(boxes[keep], scores[keep], width, height)


def _open(model_path, settings, accelerator):
    from edge.inference.fetch import resolve

    return Res10Detector(resolve("res10_prototxt"), model_path, settings.score_threshold,
                         settings.iou_threshold)


register(DetectorType(
    "res10", _open, default_model="res10_caffemodel", score_threshold=0.5, detect_width=0,
    help="OpenCV's res10 SSD (Caffe), the baseline's detector", extra_models=("res10_prototxt",)))
