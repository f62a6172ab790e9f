"""Faces cut by the frame's edge (issue 12): a masked face cut at the top can look like a bare
chin, so a `partial` face never decides anyone; its track goes on, and once the face is fully in
view the normal rule applies."""
from edge.inference.geometry import Face
from edge.inference.pipeline import FaceResult, is_partial
from edge.service.decision import DecisionSettings
from edge.service.people import PeopleInView

SETTINGS = DecisionSettings(smoothing=1.0, min_frames=3, alert_clear_s=2.0, max_missed_frames=1)
SHAPE = (720, 1280, 3)


def face(label, box, p=0.95):
    """A classified face as the pipeline gives it (partial when the box touches the edge)."""
    return FaceResult(box, label, p, 0.9, partial=is_partial(box, SHAPE))


def entering_from_the_top(frames):
    """Boxes of a face sliding down into view: cut by the top edge at first."""
    return [(600, -60 + 20 * i, 680, 40 + 20 * i) for i in range(frames)]


def test_partial_no_mask_frames_never_decide_and_the_track_goes_on():
    view = PeopleInView("door", SETTINGS)
    boxes = [(600, 0, 680, 90 + i) for i in range(30)]  # cut by the top, a bare chin showing
    assert all(is_partial(b, SHAPE) for b in boxes)
    decisions = [d for i, b in enumerate(boxes) for d in view.observe([face("no_mask", b)], i * 0.1)]
    assert decisions == [] and not view.alert
    assert (view.seen, view.without_mask, view.in_view) == (0, 0, 1)
    assert list(view.people) == [1] and view.people[1].decision.frames == 0  # one track, unfed


def test_a_person_entering_from_the_edge_is_decided_only_from_full_view_frames():
    view = PeopleInView("door", SETTINGS)
    boxes = entering_from_the_top(12)
    full = [i for i, b in enumerate(boxes) if not is_partial(b, SHAPE)]
    assert full[0] == 4  # four frames cut by the edge first
    made = []
    for i, box in enumerate(boxes):
        # cut by the edge the classifier sees a bare chin; in full view, the mask
        label = "mask" if i in full else "no_mask"
        made += [(i, d.track_id, d.kind) for d in view.observe([face(label, box)], i * 0.1)]
    assert made == [(full[0] + 2, 1, "mask")]  # the third full-view frame (min_frames 3)
    assert not view.alert and view.without_mask == 0


def test_a_decided_person_cut_by_the_edge_keeps_the_decision():
    view = PeopleInView("door", SETTINGS)
    inside = (600, 300, 680, 390)
    for i in range(3):
        view.observe([face("mask", inside)], i * 0.1)
    assert view.people[1].decision.decided == "mask"
    leaving = [(600, 300 + 40 * i, 680, 390 + 40 * i) for i in range(1, 11)]  # out at the bottom
    assert [is_partial(b, SHAPE) for b in leaving].count(True) == 2
    kinds = [d.kind for i, b in enumerate(leaving)
             for d in view.observe([face("no_mask" if is_partial(b, SHAPE) else "mask", b)],
                                   0.3 + i * 0.1)]
    assert kinds == [] and not view.alert and list(view.people) == [1]
    assert view.people[1].decision.decided == "mask"


def test_with_scheduling_a_face_cut_by_the_edge_is_not_even_classified():
    partial, whole = Face((0, 200, 70, 290), 0.9), Face((600, 200, 680, 290), 0.9)
    scheduled = PeopleInView("door", SETTINGS)
    plan = scheduled.plan_classification([partial, whole], 0.0, SHAPE)
    assert plan[0] and "edge" in plan[0] and plan[1] is None
    every_face = PeopleInView("door", DecisionSettings(reclassify_every=1))
    assert every_face.plan_classification([partial, whole], 0.0, SHAPE) == [None, None]
