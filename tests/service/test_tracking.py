from types import SimpleNamespace

import pytest

from edge.service.decision import DecisionSettings, TrackDecision, update_decision
from edge.service.tracker import Tracker


def face(x, y, size=50):
    return SimpleNamespace(box=(x, y, x + size, y + size))


def test_a_moving_face_keeps_its_track_and_a_new_face_gets_a_new_one():
    tracker = Tracker(max_misses=2)
    live, _ = tracker.update([face(100, 100)], 0.0)
    first = live[0].track_id
    live, _ = tracker.update([face(110, 105), face(400, 100)], 0.1)
    assert sorted(t.track_id for t in live) == [first, first + 1]
    assert next(t for t in live if t.track_id == first).box == (110, 105, 160, 155)


def test_a_face_that_vanishes_briefly_keeps_its_track_and_ends_after_max_misses():
    tracker = Tracker(max_misses=2)
    tid = tracker.update([face(100, 100)], 0)[0][0].track_id
    tracker.update([], 1)
    tracker.update([], 2)
    live, ended = tracker.update([face(102, 100)], 3)
    assert [t.track_id for t in live] == [tid] and ended == []
    for now in (4, 5):
        tracker.update([], now)
    live, ended = tracker.update([], 6)
    assert live == [] and [t.track_id for t in ended] == [tid]


def test_two_close_faces_are_not_swapped():
    tracker = Tracker()
    a, b = tracker.update([face(100, 100), face(160, 100)], 0)[0]
    tracker.update([face(165, 100), face(105, 100)], 1)
    assert a.box[0] == 105 and b.box[0] == 165


def run(probabilities, settings=DecisionSettings()):
    state = TrackDecision()
    return [update_decision(state, p, settings) for p in probabilities]


def test_one_decision_per_person_after_the_minimum_frames():
    out = run([0.9] * 10)
    assert out.count("no_mask") == 1 and out.index("no_mask") == 3
    assert run([0.05] * 10).count("mask") == 1


def test_uncertain_frames_decide_nothing_and_unknown_frames_are_skipped():
    assert set(run([0.5, 0.55, 0.45] * 5)) == {None}
    assert set(run([0.9, None, None, 0.9, None])) == {None}  # only two classified frames


def test_hysteresis_holds_a_decision_through_noise_and_taking_the_mask_off_gives_a_new_event():
    out = run([0.05] * 6 + [0.6, 0.2, 0.6, 0.25] + [0.95] * 6)
    assert [x for x in out if x] == ["mask", "no_mask"]


@pytest.mark.parametrize("p", [0.71, 0.99])
def test_steady_high_probability_decides_no_mask(p):
    assert "no_mask" in run([p] * 8)


def test_matching_before_classifying_changes_nothing_and_agrees_with_the_update():
    tracker = Tracker()
    tracker.update([face(100, 100), face(300, 100)], 0)
    before = [(t.track_id, t.box, t.hits) for t in tracker.tracks]
    faces = [face(305, 102), face(600, 100), face(98, 101)]
    matched = tracker.match(faces)
    assert [(t.track_id, t.box, t.hits) for t in tracker.tracks] == before
    assert [t and t.track_id for t in matched] == [2, None, 1]
    live, _ = tracker.update(faces, 1)
    assert {t.track_id: t.face for t in live} == {2: faces[0], 3: faces[1], 1: faces[2]}


def test_a_box_that_jitters_stands_still_and_one_that_drifts_or_grows_does_not():
    tracker = Tracker()
    track = tracker.update([face(100, 100, 100)], 0.0)[0][0]
    for now, x in ((10.0, 102), (20.0, 98), (30.0, 103)):  # centre within 5% of the size
        tracker.update([face(x, 101, 100)], now)
    assert track.still_for(30.0) == 30.0
    for now, x in ((31.0, 104), (32.0, 106)):  # a slow drift: 6% from where it stood still
        tracker.update([face(x, 100, 100)], now)
    assert track.still_since == 32.0
    tracker.update([face(100, 94, 112)], 33.0)  # the same centre, 12% bigger: someone nearer
    assert track.still_since == 33.0 and track.still_for(40.0) == 7.0
