"""One frame through the inference core: find faces, classify each, time each stage."""
import time
from dataclasses import dataclass, field

UNKNOWN = "unknown"


@dataclass(frozen=True)
class FaceResult:
    """A face in a frame: box in pixels, `mask` / `no_mask` / `unknown`, scores."""

    box: tuple
    label: str
    score: float
    face_score: float

    def as_dict(self):
        """The JSON form of DESIGN.md (`box` rounded to whole pixels)."""
        return {"box": [int(round(v)) for v in self.box], "label": self.label,
                "score": round(float(self.score), 4), "face_score": round(float(self.face_score), 4)}


@dataclass
class FrameResult:
    """All faces of one frame and the milliseconds each stage took."""

    faces: list
    timings_ms: dict = field(default_factory=dict)


class FaceMaskPipeline:
    """Detector + classifier; faces smaller than `min_face_size` px are `unknown`, not guessed."""

    def __init__(self, detector, classifier, min_face_size=32):
        self.detector = detector
        self.classifier = classifier
        self.min_face_size = min_face_size

    def analyze(self, frame_bgr):
        """Faces of one BGR frame with their labels, and stage timings (detect, classify)."""
        start = time.perf_counter()
        faces = self.detector.detect(frame_bgr)
        detected = time.perf_counter()
        results = []
        for face in faces:
            if face.size < self.min_face_size:
                results.append(FaceResult(face.box, UNKNOWN, 0.0, face.score))
                continue
            c = self.classifier.classify_box(frame_bgr, face.box)
            results.append(FaceResult(face.box, c.label, c.score, face.score))
        done = time.perf_counter()
        return FrameResult(results, {"detect": (detected - start) * 1000.0,
                                     "classify": (done - detected) * 1000.0})
