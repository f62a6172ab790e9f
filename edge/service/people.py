"""What one camera knows between frames: the people in view (tracks, each with its decision),
the counts of people seen and unmasked, and the camera's alert.

Besides the decisions `observe` returns, a camera notes what a monitor needs to show durations:
a decided person leaving (`Departure`) and the alert clearing (`AlertCleared`); the daemon takes
them with `take_happenings` and publishes each as an event."""
import collections
from dataclasses import dataclass, field
from typing import Optional

from edge.service.decision import TrackDecision, update_decision
from edge.service.tracker import Tracker

FPS_WINDOW_S = 5.0
MAX_HAPPENINGS = 1000


@dataclass(frozen=True)
class Decision:
    """A decision to publish: which track, what, how sure, where."""

    track_id: int
    kind: str
    score: float
    box: tuple


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


@dataclass
class Person:
    """One tracked person: the running decision and whether the counts include them yet."""

    decision: TrackDecision = field(default_factory=TrackDecision)
    counted: bool = False
    counted_unmasked: bool = False
    score: Optional[float] = None  # the score of the last decision, for the departure

    @property
    def unmasked(self):
        """True while this person is decided `no_mask`."""
        return self.decision.decided == "no_mask"


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

    def observe(self, faces, now):
        """Fold one frame's faces in; returns the decisions it caused."""
        live, ended = self.tracker.update(faces, now)
        self.frames += 1
        for track in ended:
            self._leave(track, self.people.pop(track.track_id, None))
        decisions = []
        for track in live:
            if track.face is None:
                continue
            person = self.people.setdefault(track.track_id, Person())
            decision = self._decide(person, track)
            if decision:
                decisions.append(decision)
        self.in_view = sum(1 for t in live if t.face is not None)
        self._update_alert(now)
        self._frame_times = [t for t in self._frame_times if now - t < FPS_WINDOW_S] + [now]
        return decisions

    def _decide(self, person, track):
        face = track.face
        p = None if face.score is None else _no_mask_probability(face)
        verdict = update_decision(person.decision, p, self.settings)
        if not verdict:
            return None
        probability = person.decision.probability
        self._count(person, verdict)
        person.score = probability if verdict == "no_mask" else 1.0 - probability
        return Decision(track.track_id, verdict, person.score, track.box)

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


def _no_mask_probability(face):
    return face.score if face.label == "no_mask" else 1.0 - face.score
