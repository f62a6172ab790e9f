"""Per track: a smoothed no-mask probability, hysteresis and a minimum number of frames decide
`mask` or `no_mask` once; a decided person who later changes gives one new decision."""
from dataclasses import dataclass


@dataclass(frozen=True)
class DecisionSettings:
    """How sure and for how long before a person is decided."""

    smoothing: float = 0.4  # weight of the newest frame in the running mean
    min_frames: int = 4  # classified frames before the first decision
    no_mask_above: float = 0.7  # smoothed P(no mask) that decides no_mask
    mask_below: float = 0.3  # smoothed P(no mask) that decides mask


@dataclass
class TrackDecision:
    """The decision state of one track."""

    probability: float = None
    frames: int = 0
    decided: str = None


def update_decision(state, no_mask_probability, settings):
    """Fold one frame's P(no mask) (None: the face was not classified) into the track's state;
    returns the new decision (`mask` / `no_mask`) when it changes, else None."""
    if no_mask_probability is None:
        return None
    a = settings.smoothing
    state.probability = no_mask_probability if state.probability is None else \
        a * no_mask_probability + (1 - a) * state.probability
    state.frames += 1
    if state.frames < settings.min_frames:
        return None
    if state.probability >= settings.no_mask_above:
        verdict = "no_mask"
    elif state.probability <= settings.mask_below:
        verdict = "mask"
    else:
        return None  # between the two bounds the last decision stands (hysteresis)
    if verdict == state.decided:
        return None
    state.decided = verdict
    return verdict
