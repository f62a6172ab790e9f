"""What one camera knows between frames: its tracker, per-track decisions, its alert and counts."""
from dataclasses import dataclass, field

from edge.service.decision import TrackDecision, update_decision
from edge.service.tracker import Tracker


@dataclass(frozen=True)
class Decision:
    """A decision to publish: which track, what, how sure, where."""

    track_id: int
    kind: str
    score: float
    box: tuple


@dataclass
class CameraState:
    """Tracks, decisions and the alert of one camera."""

    name: str
    tracker: Tracker
    decision_settings: object
    alert_clear_s: float
    alert: bool = False
    people: int = 0
    without_mask: int = 0
    in_view: int = 0
    last_unmasked_at: float = None
    frames: int = 0
    frame_times: list = field(default_factory=list)

    def observe(self, faces, now):
        """Fold one frame's faces in; returns the decisions it caused."""
        live, _ = self.tracker.update(faces, now)
        self.frames += 1
        decisions = []
        for track in live:
            if track.face is None:
                continue
            state = track.data.setdefault("decision", TrackDecision())
            p = None if track.face.label == "unknown" else _no_mask_probability(track.face)
            verdict = update_decision(state, p, self.decision_settings)
            if verdict:
                score = state.probability if verdict == "no_mask" else 1.0 - state.probability
                decisions.append(Decision(track.track_id, verdict, score, track.box))
                self._count(track, verdict)
        self.in_view = sum(1 for t in live if t.face is not None)
        self._update_alert(live, now)
        self.frame_times = [t for t in self.frame_times if now - t < 5.0] + [now]
        return decisions

    def _count(self, track, verdict):
        if not track.data.get("counted"):
            track.data["counted"] = True
            self.people += 1
        if verdict == "no_mask" and not track.data.get("counted_unmasked"):
            track.data["counted_unmasked"] = True
            self.without_mask += 1

    def _update_alert(self, live, now):
        unmasked = any(t.data.get("decision") and t.data["decision"].decided == "no_mask" for t in live)
        if unmasked:
            self.last_unmasked_at = now
            self.alert = True
        else:
            self.tick(now)

    def tick(self, now):
        """Let the alert clear on time even when no frame arrives."""
        if self.alert and self.last_unmasked_at is not None and now - self.last_unmasked_at >= self.alert_clear_s:
            self.alert = False

    @property
    def fps(self):
        """Frames per second over the last five seconds."""
        if len(self.frame_times) < 2:
            return 0.0
        return (len(self.frame_times) - 1) / max(self.frame_times[-1] - self.frame_times[0], 1e-6)


def _no_mask_probability(face):
    return face.score if face.label == "no_mask" else 1.0 - face.score


def new_camera_state(name, decision_config):
    """A CameraState from the decision section of the config."""
    return CameraState(name, Tracker(decision_config.track_iou, decision_config.max_missed_frames),
                       decision_config.settings(), decision_config.alert_clear_s)

