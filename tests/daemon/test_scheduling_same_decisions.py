"""Classify people, not frames (issue 11): the daemon's frame step (`daemon.analyse`) asks the
classifier only about the faces a camera's people need, in one call; on the shared videos the
decisions, their order and the alert are the same as with every face classified on every frame.

The videos run through the real pipeline (the shipped models, the default detector) and
PeopleInView, frame by frame on the video's own clock: once as the video's frames come, once at a
third of them (a Raspberry Pi's frame rate). Each frame is detected once and both ways see the
same faces (the schedule changes only what is classified)."""
import dataclasses

import pytest

from edge.inference.geometry import Face
from edge.inference.pipeline import FaceResult
from edge.service.daemon import analyse
from edge.service.decision import DecisionSettings
from edge.service.people import AlertCleared, PeopleInView
from tests.conftest import shared_path

VIDEOS = ("one_masked", "one_unmasked", "putting_on_mask")
EVERY_FRAME = DecisionSettings(reclassify_every=1)
SCHEDULED = DecisionSettings()  # the defaults: reclassify_every 5, reclassify_within_s 1.0


class DetectOnce:
    """The real pipeline, each frame detected once however many times it is asked about it;
    counts the faces classified."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self._last = (None, None)

    def detect(self, image):
        if self._last[0] is not image:
            self._last = (image, self.pipeline.detect(image))
        return self._last[1]

    def classify(self, image, faces):
        return self.pipeline.classify(image, faces)

    def unclassified(self, image, face, reason):
        return self.pipeline.unclassified(image, face, reason)


@pytest.fixture(scope="module")
def pipeline():
    from edge.inference.pipeline import build_pipeline

    built = build_pipeline()
    yield built
    built.close()


def frames(path, stride):
    """(seconds into the video, BGR image) of every `stride`-th frame."""
    import cv2

    capture = cv2.VideoCapture(path)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    number = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            if number % stride == 0:
                yield number / fps, image
            number += 1
    finally:
        capture.release()


@dataclasses.dataclass
class Run:
    """One way of running the frame loop over a video: what happened, in order, and the cost."""

    view: PeopleInView
    happened: list = dataclasses.field(default_factory=list)  # (seconds, what)
    frames: int = 0
    classified: int = 0

    def step(self, pipeline, image, now):
        """The daemon's frame step: analyse, then observe; notes decisions, alert changes,
        departures and alert clearings."""
        result = analyse(pipeline, self.view, image, now)
        self.frames += 1
        self.classified += result.classified
        alert = self.view.alert
        for d in self.view.observe(result.faces, now):
            self.happened.append((now, ("decision", d.track_id, d.kind)))
        self._note(alert, now)

    def finish(self, now):
        """After the video: let the alert clear on time, as the daemon's tick does."""
        alert = self.view.alert
        self.view.tick(now + self.view.settings.alert_clear_s + 0.1)
        self._note(alert, now)

    def _note(self, alert, now):
        if self.view.alert != alert:
            self.happened.append((now, ("alert", self.view.alert)))
        for h in self.view.take_happenings():
            what = ("alert_cleared",) if isinstance(h, AlertCleared) else \
                ("left", h.track_id, h.kind)
            self.happened.append((now, what))

    @property
    def sequence(self):
        return [what for _, what in self.happened]


@pytest.mark.parametrize("stride", [1, 3], ids=["all_frames", "a_third"])
@pytest.mark.parametrize("video", VIDEOS)
def test_scheduling_gives_the_same_decisions_as_classifying_every_frame(pipeline, video, stride,
                                                                         record_property):
    path = shared_path("data", "videos", f"{video}.mp4")
    shared = DetectOnce(pipeline)
    every, scheduled = Run(PeopleInView(video, EVERY_FRAME)), Run(PeopleInView(video, SCHEDULED))
    now = 0.0
    for now, image in frames(path, stride):
        every.step(shared, image, now)
        scheduled.step(shared, image, now)
    every.finish(now)
    scheduled.finish(now)
    assert any(what[0] == "decision" for what in every.sequence), "no decision: proves nothing"
    assert scheduled.sequence == every.sequence
    shift = max(abs(a[0] - b[0]) for a, b in zip(every.happened, scheduled.happened))
    per_frame = (every.classified / every.frames, scheduled.classified / scheduled.frames)
    record_property("classified_per_frame", per_frame)
    print(f"\n{video}, every {stride} frame(s): {every.frames} frames, faces classified per frame "
          f"{per_frame[0]:.3f} every frame, {per_frame[1]:.3f} scheduled "
          f"({1 - scheduled.classified / every.classified:.0%} saved); decisions "
          f"{every.sequence}; at most {shift:.2f} s later")
    assert scheduled.classified < every.classified


# -- the frame step itself, on a stand-in pipeline


class StandIn:
    """A pipeline whose detector finds the given boxes and whose classifier says `mask`;
    records each classify call."""

    def __init__(self, boxes):
        self.boxes, self.calls = boxes, []

    def detect(self, image):
        return [Face(box, 0.9) for box in self.boxes]

    def classify(self, image, faces):
        self.calls.append([f.box for f in faces])
        return [FaceResult(f.box, "mask", 0.97, f.score) for f in faces]

    def unclassified(self, image, face, reason):
        return FaceResult(face.box, "unknown", None, face.score, reason)


def test_one_classify_call_for_the_faces_the_people_need_and_the_others_say_why():
    import numpy as np

    image = np.zeros((720, 1280, 3), np.uint8)
    decided, new = (100, 100, 160, 170), (400, 100, 460, 170)
    view = PeopleInView("door", DecisionSettings(min_frames=1, reclassify_every=5))
    pipeline = StandIn([decided])
    for i in range(3):
        analyse(pipeline, view, image, i * 0.04)
        view.observe([FaceResult(decided, "mask", 0.97, 0.9)], i * 0.04)
    pipeline = StandIn([decided, new])
    result = analyse(pipeline, view, image, 0.12)
    assert pipeline.calls == [[new]]  # one call, only the new face
    assert [f.label for f in result.faces] == ["unknown", "mask"]
    assert result.faces[0].reason.startswith("decided mask")
    assert (result.classified, result.skipped) == (1, 1)


def test_with_reclassify_every_1_every_face_is_classified_in_one_call():
    import numpy as np

    image = np.zeros((720, 1280, 3), np.uint8)
    boxes = [(100, 100, 160, 170), (400, 100, 460, 170)]
    view = PeopleInView("door", DecisionSettings(min_frames=1, reclassify_every=1))
    for i in range(4):
        pipeline = StandIn(boxes)
        result = analyse(pipeline, view, image, i * 0.04)
        view.observe(result.faces, i * 0.04)
        assert pipeline.calls == [boxes] and (result.classified, result.skipped) == (2, 0)


# -- what the stats and /metrics say of it


def test_the_stats_and_metrics_count_faces_classified_and_skipped():
    import jsonschema

    from edge.service import payloads
    from edge.service.metrics import Metrics, render

    metrics = Metrics()
    metrics.count_faces("door", 1, 4)
    metrics.count_faces("door", 2, 0)
    metrics.count_faces("yard", 0, 3)
    assert metrics.faces_classified() == (3, 7)
    text = render(metrics.families())
    assert 'maskdet_faces_classified_total{camera="door"} 3' in text
    assert 'maskdet_faces_skipped_total{camera="yard"} 3' in text
    section = payloads.classifier_load(3, 7, 8, 2)
    assert section == {"faces_classified": 3, "faces_skipped": 7, "per_frame": 0.25}
    assert payloads.classifier_load(3, 7, 0, 0)["per_frame"] is None
    schema = payloads.load_schema("stats")
    jsonschema.validate(payloads.stats({}, {}, 0, 0, 1.0, classifier=section), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(payloads.stats({}, {}, 0, 0, 1.0, classifier={"per_frame": 1}), schema)
