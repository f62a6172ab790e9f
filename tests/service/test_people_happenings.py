"""Departures and alert clearings: what a monitor needs to show durations."""
from edge.inference.pipeline import FaceResult
from edge.service.decision import DecisionSettings
from edge.service.people import AlertCleared, Departure, PeopleInView

SETTINGS = DecisionSettings(smoothing=1.0, min_frames=2, alert_clear_s=1.0, max_missed_frames=1)
BOX = (100, 100, 160, 170)


def face(label, p=0.95):
    return FaceResult(BOX, label, p, 0.9)


def test_a_decided_person_leaving_and_the_alert_clearing_are_noted_once():
    view = PeopleInView("door", SETTINGS)
    for i in range(4):
        view.observe([face("no_mask")], 10.0 + i * 0.1)  # decided at the 2nd frame
    assert view.take_happenings() == [] and view.alert
    view.observe([], 10.4)
    view.observe([], 10.5)  # missed twice: the track ends
    left = view.take_happenings()
    assert left == [Departure(1, "no_mask", left[0].score, BOX, 10.0, 10.3)]
    assert left[0].score > 0.9
    view.tick(11.3)  # 0.9 s after the last frame the person was still tracked: not yet
    assert view.alert and view.take_happenings() == []
    view.tick(11.45)
    assert not view.alert
    assert view.take_happenings() == [AlertCleared(10.1, 11.45)]
    view.tick(12.0)
    assert view.take_happenings() == []


def test_an_undecided_face_leaving_is_not_news():
    view = PeopleInView("door", SETTINGS)
    view.observe([face("no_mask")], 0.0)  # one frame: not decided
    for t in (0.1, 0.2, 0.3):
        view.observe([], t)
    assert view.take_happenings() == []


def test_happenings_nobody_takes_stay_bounded():
    view = PeopleInView("door", DecisionSettings(smoothing=1.0, min_frames=1, max_missed_frames=0,
                                                 alert_clear_s=0))
    for i in range(3000):
        view.observe([face("mask")] if i % 2 == 0 else [], float(i))
    assert 0 < len(view.take_happenings()) <= 1000
