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
