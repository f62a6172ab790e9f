"""YuNet (OpenCV's `cv2.FaceDetectorYN`, ONNX): a small CPU face detector with its own NMS."""
import cv2
import numpy as np

from ..faces import to_faces


class YuNetDetector:
    """Face detector over a YuNet ONNX file through OpenCV's DNN module (CPU only)."""

    name = "yunet"

    def __init__(self, model_path, score_threshold=0.6, iou_threshold=0.3, top_k=500):
        self._detector = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320),
                                                   score_threshold, iou_threshold, top_k)
        self._input_size = (320, 320)

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
