"""The per-camera people and alert state, frame by frame, on plain FaceResults (no video)."""
import pytest

from edge.inference.pipeline import FaceResult
from edge.service.decision import DecisionSettings
from edge.service.people import PeopleInView

SETTINGS = DecisionSettings(smoothing=1.0, min_frames=3, no_mask_above=0.7, mask_below=0.3,
                            alert_clear_s=2.0, max_missed_frames=1)
BOX = (100, 100, 160, 170)


def unmasked(p=0.95, box=BOX):
    return FaceResult(box, "no_mask", p, 0.9)


def masked(p=0.95, box=BOX):
    return FaceResult(box, "mask", p, 0.9)


def feed(view, frames, start=0.0, step=0.1):
    """Observe each frame's faces in turn; returns [(time, [decision kinds])]."""
    out = []
    for i, faces in enumerate(frames):
        now = start + i * step
        out.append((now, [d.kind for d in view.observe(faces, now)]))
    return out


def test_a_person_is_decided_once_after_min_frames():
    view = PeopleInView("door", SETTINGS)
    kinds = [k for _, k in feed(view, [[unmasked()]] * 6)]
    assert kinds == [[], [], ["no_mask"], [], [], []]
    assert (view.seen, view.without_mask, view.in_view, view.alert) == (1, 1, 1, True)


def test_scores_between_the_bounds_keep_the_last_decision():
    view = PeopleInView("door", SETTINGS)
    feed(view, [[masked()]] * 3)
    # P(no mask) 0.5: between mask_below and no_mask_above, so no new decision (hysteresis)
    kinds = [k for _, k in feed(view, [[unmasked(0.5)]] * 5, start=1.0)]
    assert kinds == [[]] * 5 and not view.alert


def test_taking_the_mask_off_gives_one_new_decision_and_counts_the_person_once():
    view = PeopleInView("door", SETTINGS)
    first = feed(view, [[masked()]] * 3)
    later = feed(view, [[unmasked()]] * 4, start=1.0)
    assert first[-1][1] == ["mask"]
    assert [k for _, k in later] == [["no_mask"], [], [], []]
    assert (view.seen, view.without_mask) == (1, 1)


def test_unknown_faces_do_not_decide():
    view = PeopleInView("door", SETTINGS)
    tiny = FaceResult(BOX, "unknown", None, 0.9, "smaller than 32 px")
    assert [k for _, k in feed(view, [[tiny]] * 5)] == [[]] * 5
    assert view.in_view == 1 and view.seen == 0


def test_the_alert_clears_alert_clear_s_after_the_unmasked_person_leaves():
    view = PeopleInView("door", SETTINGS)
    feed(view, [[unmasked()]] * 3)  # decided at t=0.2
    assert view.alert
    view.observe([], 0.3)  # missed once: still in view, still unmasked
    view.observe([], 0.4)  # missed twice: the track ends (max_missed_frames 1)
    assert not view.people
    view.tick(2.2)
    assert view.alert  # 1.9 s after the person was last counted in view
    view.tick(2.35)
    assert not view.alert


def test_the_alert_clears_when_the_person_masks_up():
    view = PeopleInView("door", SETTINGS)
    feed(view, [[unmasked()]] * 3)
    feed(view, [[masked()]] * 3, start=0.3)  # decided mask at 0.3: the last unmasked frame was 0.2
    assert view.people and not any(p.unmasked for p in view.people.values())
    view.tick(2.1)
    assert view.alert
    view.tick(2.25)
    assert not view.alert


def test_two_people_are_tracked_and_decided_separately():
    view = PeopleInView("door", SETTINGS)
    other = (400, 100, 460, 170)
    kinds = [k for _, k in feed(view, [[masked(), unmasked(box=other)]] * 3)]
    assert sorted(kinds[-1]) == ["mask", "no_mask"]
    assert (view.seen, view.without_mask, view.in_view) == (2, 1, 2)


@pytest.mark.parametrize("frames, expected", [(1, 0.0), (11, 10.0)])
def test_fps_over_the_last_seconds(frames, expected):
    view = PeopleInView("door", SETTINGS)
    feed(view, [[]] * frames)
    assert view.fps == pytest.approx(expected)


def test_the_alert_delay_runs_on_the_monotonic_clock_and_events_get_wall_times():
    """The daemon feeds PeopleInView monotonic times (a Pi's wall clock jumps at NTP sync);
    a departure's times are turned into wall-clock times only for its event."""
    import time

    from edge.service.daemon import on_the_wall_clock
    from edge.service.people import AlertCleared

    now = time.monotonic()
    wall = on_the_wall_clock(AlertCleared(now - 10.0, now))
    assert wall.cleared_at == pytest.approx(time.time(), abs=1.0)
    assert wall.cleared_at - wall.started_at == pytest.approx(10.0)


def test_forgetting_people_ends_their_tracks_and_lets_the_alert_clear():
    view = PeopleInView("door", SETTINGS)
    feed(view, [[unmasked()]] * 3)
    assert view.alert and view.people
    view.forget_people(0.3)
    assert not view.people and view.in_view == 0 and view.alert  # clears on time, not at once
    view.forget_people(2.3)
    assert not view.alert
    kinds = [k for _, k in feed(view, [[unmasked()]] * 3, start=5.0)]
    assert kinds[-1] == ["no_mask"]  # whoever stands there afterwards is decided anew
    assert view.seen == 2
