"""An SSD face detector whose TFLite graph ends in TFLite_Detection_PostProcess (the format of
Coral's `ssd_mobilenet_v2_face_quant_postprocess`): boxes, classes, scores and a count."""
import cv2
import numpy as np

from edge.inference import tensors
from edge.errors import ModelError
from edge.inference.detectors.registry import DetectorType, register
from edge.inference.geometry import to_faces


def decode(boxes, scores, count, width, height, score_threshold):
    """Post-processed outputs (boxes as ymin, xmin, ymax, xmax in 0..1) -> pixel boxes, scores."""
    n = int(np.asarray(count).reshape(-1)[0])
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[:n]
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)[:n]
    keep = scores >= score_threshold
    ymin, xmin, ymax, xmax = boxes[keep].T
    return np.column_stack([xmin * width, ymin * height, xmax * width, ymax * height]), scores[keep]


def output_roles(output_details):
    """Map the post-process op's four outputs to boxes / classes / scores / count.

    The op names them `X`, `X:1`, `X:2`, `X:3` in that order; boxes are the one with last dim 4."""
    if len(output_details) != 4:
        raise ModelError(f"an SSD post-process model has 4 outputs, this one has {len(output_details)}")
    ordered = sorted(output_details, key=lambda d: (d["name"].rsplit(":", 1)[-1]
                                                    if ":" in d["name"] else "0"))
    roles = dict(zip(("boxes", "classes", "scores", "count"), ordered))
    if len(roles["boxes"]["shape"]) < 2 or roles["boxes"]["shape"][-1] != 4:
        raise ModelError("cannot find the boxes output ([1, N, 4]) of the SSD post-process model")
    return roles


class SsdDetector:
    """Face detector over a TFLite SSD with the detection post-process op (CPU or Edge TPU)."""

    name = "ssd"

    @property
    def placement(self):
        """Where the model runs now (the Edge TPU or the CPU) and why."""
        return self.interpreter.placement

    def __init__(self, interpreter, score_threshold=0.5):
        self.interpreter = interpreter
        self.height, self.width = tensors.input_size(interpreter)
        self.roles = output_roles(interpreter.get_output_details())
        self.score_threshold = score_threshold

    def detect(self, frame_bgr):
        """Faces in a BGR frame (the model sees it stretched to its input, as Coral's demo does)."""
        height, width = frame_bgr.shape[:2]
        rgb = cv2.resize(frame_bgr, (self.width, self.height), interpolation=cv2.INTER_AREA)[..., ::-1]
        tensors.set_image(self.interpreter, rgb, 127.5, 127.5)
        self.interpreter.invoke()
        get = {k: self.interpreter.get_tensor(d["index"]) for k, d in self.roles.items()}
        boxes, scores = decode(get["boxes"], get["scores"], get["count"], width, height,
                               self.score_threshold)
        return to_faces(boxes, scores, width, height)


def _open(model_path, settings, accelerator):
    from edge.inference.accelerator import AcceleratedModel

    try:
        return SsdDetector(AcceleratedModel(model_path, accelerator), settings.score_threshold)
    except ModelError as exc:
        if str(model_path) in str(exc):
            raise
        raise ModelError(f"{model_path} is not a TFLite SSD face detector: {exc}") from exc


register(DetectorType(
    "ssd", _open, default_model=None, score_threshold=0.5, detect_width=0,
    help="a TFLite SSD ending in the detection post-process op, as Coral's face detector "
         "(CPU or Edge TPU; give its file in detector.model)"))
