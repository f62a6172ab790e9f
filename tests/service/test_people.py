"""The per-camera people and alert state, frame by frame, on plain FaceResults (no video)."""
import pytest

from edge.inference.geometry import Face
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


def test_a_person_walking_up_stays_undecided_until_the_face_is_big_enough():
    """Far away the face is under the size gate (`unknown`); the track goes on as it grows and
    is decided from the frames where it is big enough, min_frames of them."""
    view = PeopleInView("door", SETTINGS)
    sides = [20, 23, 26, 29, 31, 34, 38, 42]  # the face grows as the person walks up
    decisions = []
    for i, side in enumerate(sides):
        box = (100, 100, 100 + side, 100 + side)
        face = unmasked(box=box) if side >= 32 else \
            FaceResult(box, "unknown", None, 0.8, f"smaller than 32 px ({side} px)")
        decisions.append(view.observe([face], i * 0.1))
    assert [[d.kind for d in ds] for ds in decisions] == [[]] * 7 + [["no_mask"]]
    assert decisions[-1][0].track_id == 1  # the same person all along


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


# -- still faces (issue 12): a poster or a screen never moves

STILL = DecisionSettings(smoothing=1.0, min_frames=3, alert_clear_s=2.0, max_missed_frames=1,
                         still_face_s=60.0)


def test_a_face_still_for_still_face_s_is_taken_for_a_picture_once_and_the_alert_clears(caplog):
    view = PeopleInView("door", STILL)
    made = feed(view, [[unmasked()]] * 3)
    assert made[-1][1] == ["no_mask"] and view.alert
    with caplog.at_level("WARNING", logger="edge.service.people"):
        made = feed(view, [[unmasked(box=(101, 100, 161, 170))]] * 10, start=59.5, step=0.1)
    assert all(kinds == [] for _, kinds in made)
    assert view.people[1].picture
    assert (view.seen, view.without_mask, view.in_view) == (0, 0, 0)  # withdrawn from the counts
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    text = warnings[0].getMessage()
    assert "door" in text and "[101, 100, 161, 170]" in text
    assert "add an ignore region (cameras[].ignore_regions) if this is a picture" in text
    # its decision is withdrawn from the alert: the alert clears on its normal timer
    assert view.alert  # last counted unmasked at 59.9
    view.tick(59.9 + 1.9)
    assert view.alert
    view.tick(59.9 + 2.05)
    assert not view.alert


def test_a_picture_that_moves_is_a_person_again_and_decided_anew_but_warned_of_once(caplog):
    view = PeopleInView("door", STILL)
    feed(view, [[unmasked()]] * 3)
    with caplog.at_level("WARNING", logger="edge.service.people"):
        feed(view, [[unmasked()]] * 2, start=60.0)
        assert view.people[1].picture and not view.alert
        moved = (120, 100, 180, 170)  # 20 px to the right: a third of the box
        made = feed(view, [[unmasked(box=moved)]] * 3, start=61.0)
        assert [kinds for _, kinds in made] == [[], [], ["no_mask"]]  # min_frames anew
        assert view.alert and (view.seen, view.without_mask, view.in_view) == (1, 1, 1)
        feed(view, [[unmasked(box=moved)]] * 2, start=122.0)  # still again for 60 s
    assert view.people[1].picture and list(view.people) == [1]
    assert sum(r.levelname == "WARNING" for r in caplog.records) == 1  # once per track


def test_still_face_s_0_never_takes_a_face_for_a_picture():
    from dataclasses import replace

    view = PeopleInView("door", replace(STILL, still_face_s=0.0))
    feed(view, [[unmasked()]] * 3)
    feed(view, [[unmasked()]] * 3, start=10000.0)
    assert view.alert and not view.people[1].picture and view.in_view == 1


def test_a_person_who_moves_is_never_a_picture():
    view = PeopleInView("door", STILL)
    frames = [[unmasked(box=(100 + 5 * (i % 2), 100, 160 + 5 * (i % 2), 170))] for i in range(200)]
    feed(view, frames, step=1.0)  # 200 s, stepping 5 px (8% of the box) to and fro
    assert view.alert and not view.people[1].picture


# -- classify people, not frames (issue 11): which faces the classifier is asked about

SHAPE = (720, 1280, 3)
SCHEDULED = DecisionSettings(smoothing=0.4, min_frames=3, reclassify_every=5,
                             reclassify_within_s=1.0, max_missed_frames=1)


def step(view, truth, now, box=BOX):
    """One frame with one face whose true label is `truth`: the classifier is asked only if the
    plan says so (as the daemon does); returns (the reason it was not asked or None, kinds)."""
    from edge.inference.geometry import Face

    why = view.plan_classification([Face(box, 0.9)], now, SHAPE)[0]
    face = FaceResult(box, truth, 0.95, 0.9) if why is None else \
        FaceResult(box, "unknown", None, 0.9, why)
    return why, [d.kind for d in view.observe([face], now)]


def test_a_new_or_undecided_person_is_classified_every_frame_a_settled_one_every_kth():
    view = PeopleInView("door", SCHEDULED)
    asked = [step(view, "mask", i * 0.04)[0] is None for i in range(23)]
    assert asked[:3] == [True] * 3  # new, then undecided until min_frames decide `mask`
    assert view.people[1].decision.decided == "mask"
    assert asked[3:] == ([False] * 4 + [True]) * 4  # settled: every 5th frame
    why = step(view, "mask", 23 * 0.04)[0]
    assert why and why.startswith("decided mask")


def test_every_face_is_classified_with_reclassify_every_1():
    from dataclasses import replace

    view = PeopleInView("door", replace(SCHEDULED, reclassify_every=1))
    assert all(step(view, "mask", i * 0.04)[0] is None for i in range(20))


def test_a_decided_face_that_moved_away_from_its_last_check_is_classified_at_once():
    view = PeopleInView("door", SCHEDULED)
    for i in range(4):
        step(view, "mask", i * 0.04)
    assert step(view, "mask", 0.16, box=(104, 100, 164, 170))[0] is not None  # IoU 0.88
    why, _ = step(view, "mask", 0.2, box=(125, 100, 185, 170))  # IoU 0.4 to the last check
    assert why is None


def test_a_doubtful_decision_is_classified_every_frame_until_it_settles():
    view = PeopleInView("door", SCHEDULED)
    for i in range(8):
        step(view, "mask", i * 0.04)
    now, made, asked = 0.32, [], []
    while not made and now < 5.0:  # the mask comes off
        why, kinds = step(view, "no_mask", now)
        asked.append(why is None)
        made += kinds
        now += 0.04
    first = asked.index(True)  # the first check that sees it, then every frame
    assert made == ["no_mask"] and asked[first:] == [True] * (len(asked) - first)
    assert len(asked) - first == 3  # three frames turn a running mean from 0.05 past 0.7


def test_taking_a_mask_off_is_decided_within_reclassify_within_s_at_any_frame_rate():
    from dataclasses import replace

    settings = replace(SCHEDULED, reclassify_every=100)  # only the time bound applies
    for fps in (3.0, 7.5, 15.0, 30.0):
        for phase in range(8):  # the mask comes off at each point between two checks
            view = PeopleInView("door", settings)
            frame_s = 1.0 / fps
            frames = int(4 * fps) + phase
            skipped = sum(step(view, "mask", n * frame_s)[0] is not None for n in range(frames))
            assert view.people[1].decision.decided == "mask"
            off_at = now = frames * frame_s
            while view.people[1].decision.decided == "mask":
                step(view, "no_mask", now)
                now += frame_s
            decided_after = now - frame_s - off_at
            assert decided_after <= settings.reclassify_within_s + 1e-9, (fps, phase)
            assert skipped if fps >= 7.5 else not skipped  # 3 fps: every frame is needed


def test_the_live_view_shows_a_decided_person_between_checks_with_the_decision():
    view = PeopleInView("door", SCHEDULED)
    for i in range(5):
        step(view, "no_mask", i * 0.04)
    why = view.plan_classification([FaceResult(BOX, "x", 0.0, 0.9)], 0.2, SHAPE)[0]
    face = FaceResult(BOX, "unknown", None, 0.9, why)
    view.observe([face], 0.2)
    shown = view.as_shown([face])[0]
    assert why and (shown.label, shown.box) == ("no_mask", BOX) and shown.score > 0.9
    new = FaceResult((500, 100, 560, 170), "unknown", None, 0.9, "smaller than 32 px")
    view.observe([face, new], 0.24)
    assert view.as_shown([face, new])[1] is new  # undecided: as it is


def below_nose(share, p=0.95, box=BOX):
    return FaceResult(box, "no_mask", p, 0.9, below_nose=share)


def decisions_of(view, frames, start=0.0):
    return [d for i, faces in enumerate(frames) for d in view.observe(faces, start + i * 0.1)]


@pytest.mark.parametrize("share, reason", [(0.9, "mask_below_nose"), (0.1, "no_mask")])
def test_a_no_mask_decision_says_which_kind_its_faces_showed(share, reason):
    settings = DecisionSettings(smoothing=0.4, min_frames=3, no_mask_above=0.7, mask_below=0.3)
    view = PeopleInView("door", settings)
    [decision] = decisions_of(view, [[below_nose(share)]] * 5)
    assert (decision.kind, decision.reason) == ("no_mask", reason)


def test_the_kind_follows_the_faces_called_no_mask_not_the_masked_ones():
    """A person masked first (the model's small no-mask share there says little) who then pulls
    the mask below the nose: the no_mask decision says mask_below_nose; a model that does not
    tell the kinds apart (share None) gives no reason, and a mask decision never has one."""
    settings = DecisionSettings(smoothing=0.4, min_frames=3, no_mask_above=0.7, mask_below=0.3)
    view = PeopleInView("door", settings)
    masked_faces = [[FaceResult(BOX, "mask", 0.95, 0.9, below_nose=0.05)]] * 4
    decided = decisions_of(view, masked_faces + [[below_nose(0.8)]] * 6)
    assert [(d.kind, d.reason) for d in decided] == [("mask", None),
                                                    ("no_mask", "mask_below_nose")]
    plain = PeopleInView("door", settings)
    [decision] = decisions_of(plain, [[unmasked()]] * 5)
    assert (decision.kind, decision.reason) == ("no_mask", None)


def test_between_checks_the_live_view_keeps_the_persons_kind_of_no_mask():
    view = PeopleInView("door", SCHEDULED)
    for i in range(5):
        why = view.plan_classification([Face(BOX, 0.9)], i * 0.04, SHAPE)[0]
        face = FaceResult(BOX, "no_mask", 0.95, 0.9, below_nose=0.9) if why is None else \
            FaceResult(BOX, "unknown", None, 0.9, why)
        view.observe([face], i * 0.04)
    why = view.plan_classification([Face(BOX, 0.9)], 0.2, SHAPE)[0]
    face = FaceResult(BOX, "unknown", None, 0.9, why)
    view.observe([face], 0.2)
    shown = view.as_shown([face])[0]
    assert why and (shown.label, shown.kind) == ("no_mask", "mask_below_nose")
