"""Per track: a smoothed no-mask score, hysteresis and a minimum number of frames decide
`mask` or `no_mask` once; a decided person who later changes gives one new decision. A decision
the recent frames confirm is `settled`: such a person need not be classified every frame.

Scores are the classifier's no-mask scores (`classifier.no_mask_score`): 0.5 is the model's
own threshold, so the band below is centred on it whatever model is installed."""
import math
from dataclasses import dataclass

from edge.settings import in_range, setting


@dataclass(frozen=True)
class DecisionSettings:
    """How faces become tracks, how sure and for how long before a person is decided, and how
    long the alert outlives the last unmasked person (the config's `decision` section)."""

    smoothing: float = setting(0.4, "weight of the newest frame in the running mean", in_range(0.01, 1.0))
    min_frames: int = setting(4, "classified frames before the first decision", in_range(1, 100))
    no_mask_above: float = setting(0.7, "smoothed no-mask score that decides no_mask (0.5: the "
                                   "model's threshold)", in_range(0.5, 0.99))
    mask_below: float = setting(0.3, "smoothed no-mask score that decides mask", in_range(0.01, 0.5))
    track_iou: float = setting(0.3, "IoU that continues a track", in_range(0.05, 0.95))
    max_missed_frames: int = setting(5, "frames a face may vanish and keep its track", in_range(0, 100))
    alert_clear_s: float = setting(3.0, "the alert clears this long after the last unmasked person "
                                   "leaves or masks up", in_range(0, 3600))
    reclassify_every: int = setting(5, "a person decided and settled is classified again every this "
                                    "many frames (1: every face on every frame)", in_range(1, 100))
    reclassify_within_s: float = setting(1.0, "and often enough that a change (a mask taken off) "
                                         "is decided within about this many seconds",
                                         in_range(0.1, 60))
    still_face_s: float = setting(300.0, "a face whose box has not moved for this many seconds is "
                                  "taken for a picture: not counted, no alert (0: never)",
                                  in_range(0, 86400))

    def __post_init__(self):
        if self.mask_below >= self.no_mask_above:
            raise ValueError(f"decision.mask_below ({self.mask_below}) must be below "
                             f"decision.no_mask_above ({self.no_mask_above})")


@dataclass
class TrackDecision:
    """The decision state of one track."""

    score: float = None  # the running mean of the no-mask scores
    frames: int = 0
    decided: str = None
    last: float = None  # the no-mask score of the last classified frame


def running_mean(mean, value, smoothing):
    """The exponential running mean after `value` (the first value when `mean` is None), the
    newest value weighing `smoothing`."""
    return value if mean is None else smoothing * value + (1 - smoothing) * mean


def update_decision(state, no_mask_score, settings):
    """Fold one frame's no-mask score (None: the face was not classified) into the track's state;
    returns the new decision (`mask` / `no_mask`) when it changes, else None."""
    if no_mask_score is None:
        return None
    state.score = running_mean(state.score, no_mask_score, settings.smoothing)
    state.frames += 1
    state.last = no_mask_score
    if state.frames < settings.min_frames:
        return None
    if state.score >= settings.no_mask_above:
        verdict = "no_mask"
    elif state.score <= settings.mask_below:
        verdict = "mask"
    else:
        return None  # between the two bounds the last decision stands (hysteresis)
    if verdict == state.decided:
        return None
    state.decided = verdict
    return verdict


def settled(state, settings):
    """True when the track is decided and both its running mean (beyond the decided side's
    bound) and its last classified frame (on the decided side of 0.5, the threshold) agree with the decision."""
    if state.decided == "no_mask":
        return state.score >= settings.no_mask_above and state.last >= 0.5
    if state.decided == "mask":
        return state.score <= settings.mask_below and state.last < 0.5
    return False


def frames_to_change(settings):
    """Classified frames a settled decision needs to turn when the face changes for certain
    (its no-mask score from 0 to 1 or back): how long a change takes once it is looked at."""
    keep = 1.0 - settings.smoothing
    if keep <= 0.0:
        return 1
    return max(math.ceil(math.log(1.0 - settings.no_mask_above) / math.log(keep)),
               math.ceil(math.log(settings.mask_below) / math.log(keep)), 1)
