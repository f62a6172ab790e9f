"""What one camera knows between frames: the people in view (tracks, each with its decision),
the counts of people seen and unmasked, and the camera's alert.

Besides the decisions `observe` returns, a camera notes what a monitor needs to show durations:
a decided person leaving (`Departure`) and the alert clearing (`AlertCleared`); the daemon takes
them with `take_happenings` and publishes each as an event.

Three rules keep a person's decision honest: a face cut by the frame's edge (`partial`) never
feeds it (a masked face cut at the top looks like a bare chin); a face whose box has not moved
for `still_face_s` is taken for a picture (withdrawn from the alert and the counts, logged once,
a person again if it moves); and `plan_classification` says, before the classifier runs, which
faces need it: new and undecided people every frame, a settled decision every
`reclassify_every` frames, sooner when the box changed or `reclassify_within_s` requires it."""
import collections
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Optional

from edge.inference.classifier import no_mask_kind
from edge.inference.geometry import iou
from edge.inference.pipeline import is_partial
from edge.service.decision import (TrackDecision, frames_to_change, running_mean, settled,
                                   update_decision)
from edge.service.tracker import Tracker

log = logging.getLogger(__name__)

FPS_WINDOW_S = 5.0
MAX_HAPPENINGS = 1000
RECHECK_IOU = 0.5  # a decided face whose box overlaps its last classified box less is classified
PICTURE_HINT = "add an ignore region (cameras[].ignore_regions) if this is a picture"


@dataclass(frozen=True)
class Decision:
    """A decision to publish: which track, what, how sure, where, and for `no_mask` from a
    model that tells the kinds apart, which kind (`mask_below_nose` / `no_mask`)."""

    track_id: int
    kind: str
    score: float
    box: tuple
    reason: Optional[str] = None


@dataclass(frozen=True)
class Departure:
    """A decided person left the view: their last decision, its score, their last box, and when
    they were first and last seen (the clock `observe` was given: the daemon's is monotonic)."""

    track_id: int
    kind: str
    score: float
    box: tuple
    first_seen: float
    last_seen: float


@dataclass(frozen=True)
class AlertCleared:
    """The camera's alert cleared: when it started and when it cleared (as Departure's times)."""

    started_at: float
    cleared_at: float


@dataclass(frozen=True)
class Check:
    """When a person's face was last classified and fed the decision: frame number, time, box."""

    frame: int
    at: float
    box: tuple


@dataclass
class Person:
    """One tracked person: the running decision, whether the counts include them yet, when the
    face was last classified, and whether it is taken for a picture."""

    decision: TrackDecision = field(default_factory=TrackDecision)
    counted: bool = False
    counted_unmasked: bool = False
    score: Optional[float] = None  # the score of the last decision, for the departure
    checked: Optional[Check] = None
    picture: bool = False  # still for decision.still_face_s: not counted, no alert
    warned: bool = False  # the picture warning was logged (once per track)
    # running mean (the decision's smoothing) of the below-the-nose share of the faces called
    # no_mask; None until the model gave one
    below_nose: Optional[float] = None

    def note_kind(self, face, smoothing):
        """Fold in a classified face's kind of no mask, when it was called no_mask."""
        if face.label != "no_mask" or face.below_nose is None:
            return
        self.below_nose = running_mean(self.below_nose, face.below_nose, smoothing)

    def reason_of(self, verdict):
        """The kind of no mask of a `no_mask` verdict: the one most of its faces showed; None
        for `mask` or where the model does not tell."""
        return no_mask_kind(verdict, self.below_nose)

    @property
    def unmasked(self):
        """True while this person is decided `no_mask` (and is not taken for a picture)."""
        return self.decision.decided == "no_mask" and not self.picture


class PeopleInView:
    """Tracks, per-person decisions, counts and the alert of one camera."""

    def __init__(self, name, settings):
        self.name = name
        self.settings = settings
        self.tracker = Tracker(settings.track_iou, settings.max_missed_frames)
        self.people = {}  # track id -> Person, for live tracks
        self.alert = False
        self.seen = 0  # people decided since start
        self.without_mask = 0  # of them, decided no_mask at least once
        self.in_view = 0
        self.frames = 0  # frames observed since start
        self.last_unmasked_at: Optional[float] = None
        self.alert_started_at: Optional[float] = None
        self._frame_times = []
        # Departure / AlertCleared not yet taken by the daemon (bounded: nobody may take them)
        self._happenings = collections.deque(maxlen=MAX_HAPPENINGS)

    def plan_classification(self, faces, now, frame_shape):
        """Before the classifier runs: for each of one frame's detected `faces` (with `.box`, in
        a frame of `frame_shape`), None when it is to be classified, else why not. Classified:
        new and undecided people every frame; a settled decision every `reclassify_every`
        frames, when the box moved away from the last classified one (IoU < RECHECK_IOU), or
        when waiting a frame longer could let a change go unseen past `reclassify_within_s`.
        Not classified: faces cut by the frame's edge and pictures (neither decides anyone).
        `reclassify_every: 1` classifies every face."""
        if self.settings.reclassify_every <= 1:
            return [None] * len(faces)
        tracks = self.tracker.match(faces)
        return [self._why_not_classify(face, track, now, frame_shape)
                for face, track in zip(faces, tracks)]

    def _why_not_classify(self, face, track, now, frame_shape):
        if is_partial(face.box, frame_shape):
            return "cut by the frame's edge: does not decide"
        person = self.people.get(track.track_id) if track is not None else None
        if person is None:
            return None
        if person.picture:
            return "still for a long time: taken for a picture"
        checked = person.checked
        if checked is None or not settled(person.decision, self.settings):
            return None
        due = self.settings.reclassify_every - (self.frames + 1 - checked.frame)
        if due <= 0 or iou(checked.box, [face.box])[0] < RECHECK_IOU or self._overdue(checked, now):
            return None
        return f"decided {person.decision.decided}; checked again within {due} frames"

    def _overdue(self, checked, now):
        """True when skipping this frame could let a change of a settled person go undecided
        longer than `reclassify_within_s`: the next chance to look is a frame away, and the
        decision then needs `frames_to_change` classified frames."""
        fps = self.fps
        frame_s = 1.0 / fps if fps > 0 else 0.0
        wait = now - checked.at + frames_to_change(self.settings) * frame_s
        return wait > self.settings.reclassify_within_s

    def observe(self, faces, now):
        """Fold one frame's faces in; returns the decisions it caused."""
        live, ended = self.tracker.update(faces, now)
        self.frames += 1
        for track in ended:
            self._leave(track, self.people.pop(track.track_id, None))
        decisions = []
        in_view = 0
        for track in live:
            if track.face is None:
                continue
            person = self.people.setdefault(track.track_id, Person())
            self._note_stillness(person, track, now)
            if person.picture:
                continue
            in_view += 1
            decision = self._decide(person, track, now)
            if decision:
                decisions.append(decision)
        self.in_view = in_view
        self._update_alert(now)
        self._frame_times = [t for t in self._frame_times if now - t < FPS_WINDOW_S] + [now]
        return decisions

    def as_shown(self, faces):
        """The faces just observed as the live view shows them: a face not classified on this
        frame whose person stands decided shows that decision and its score, not `unknown`."""
        tracks = {id(t.face): t for t in self.tracker.tracks if t.face is not None}
        return [self._shown(face, tracks.get(id(face))) for face in faces]

    def _shown(self, face, track):
        person = self.people.get(track.track_id) if track is not None else None
        if face.score is not None or person is None or person.picture or \
                not person.decision.decided or person.score is None:
            return face
        return dataclasses.replace(face, label=person.decision.decided, score=person.score,
                                   below_nose=person.below_nose)

    def _note_stillness(self, person, track, now):
        """Take a face still for `still_face_s` for a picture; one that moves again is a person
        again, decided anew."""
        limit = self.settings.still_face_s
        still = bool(limit) and track.still_for(now) >= limit
        if still and not person.picture:
            self._take_for_picture(person, track)
        elif person.picture and not still:
            person.picture = False
            person.decision, person.checked = TrackDecision(), None

    def _take_for_picture(self, person, track):
        """Withdraw a still face from the alert and the counts, and say so once per track."""
        person.picture = True
        if person.counted:
            person.counted, self.seen = False, self.seen - 1
        if person.counted_unmasked:
            person.counted_unmasked, self.without_mask = False, self.without_mask - 1
        if not person.warned:
            person.warned = True
            log.warning("camera %s: the face at %s (person %d) has not moved for %.0f s: taken for "
                        "a picture, no longer counted and no alert; %s", self.name,
                        [int(round(v)) for v in track.box], track.track_id,
                        self.settings.still_face_s, PICTURE_HINT)

    def _decide(self, person, track, now):
        face = track.face
        if face.score is None or face.partial:  # a face cut by the frame's edge decides nobody
            return None
        person.checked = Check(self.frames, now, track.box)
        person.note_kind(face, self.settings.smoothing)
        verdict = update_decision(person.decision, face.no_mask_score, self.settings)
        if not verdict:
            return None
        mean = person.decision.score
        self._count(person, verdict)
        person.score = mean if verdict == "no_mask" else 1.0 - mean
        return Decision(track.track_id, verdict, person.score, track.box,
                        person.reason_of(verdict))

    def _leave(self, track, person):
        """Note the departure of a decided person (an undecided face leaving is not news)."""
        if person is not None and person.decision.decided:
            self._happenings.append(Departure(track.track_id, person.decision.decided,
                                              person.score, track.box, track.first_seen,
                                              track.last_seen))

    def take_happenings(self):
        """The departures and alert clearings noted since the last call, oldest first."""
        taken = list(self._happenings)
        self._happenings.clear()
        return taken

    def _count(self, person, verdict):
        if not person.counted:
            person.counted = True
            self.seen += 1
        if verdict == "no_mask" and not person.counted_unmasked:
            person.counted_unmasked = True
            self.without_mask += 1

    def _update_alert(self, now):
        if any(p.unmasked for p in self.people.values()):
            self.last_unmasked_at = now
            if not self.alert:
                self.alert_started_at = now
            self.alert = True
        else:
            self.tick(now)

    def forget_people(self, now):
        """Stop following anyone (detection is paused: whoever stands there when it resumes is
        someone new, not a track to continue); the alert clears on time as without frames."""
        self.tracker.tracks = []
        self.people.clear()
        self.in_view = 0
        self.tick(now)

    def tick(self, now):
        """Let the alert clear on time, also when no frame arrives."""
        if self.alert and self.last_unmasked_at is not None and \
                now - self.last_unmasked_at >= self.settings.alert_clear_s:
            self.alert = False
            started = self.alert_started_at if self.alert_started_at is not None else now
            self._happenings.append(AlertCleared(started, now))
            self.alert_started_at = None

    @property
    def fps(self):
        """Frames per second over the last five seconds."""
        times = self._frame_times
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-6)
