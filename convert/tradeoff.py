"""The kinds of face that pull a model's threshold apart (issue 12): masks worn correctly want it
high, masks worn below the nose want it low. For each candidate model: the share of each kind
called right at every threshold, the thresholds (if any) at which every kind meets its target,
and a picture of it for the model card.
"""
import numpy as np

from .metrics import share_right
from .targets import KIND_TARGETS

THRESHOLDS = tuple(round(t, 3) for t in np.linspace(0.02, 0.98, 49))


def kind_scores(score, sets):
    """{set name: {kind: P(no mask) of each face of that kind}} of a scorer (images -> scores),
    over the sets that name each face's kind."""
    out = {}
    for s in sets:
        if not s.kinds:
            continue
        scores, kinds = np.asarray(score(s.images), np.float64), np.asarray(s.kinds)
        out[s.name] = {kind: scores[kinds == kind].tolist() for kind in sorted(set(s.kinds))}
    return out


def shares_at(scores, threshold, targets=KIND_TARGETS):
    """{(set, kind): share called right} at a threshold, for each targeted kind measured."""
    shares = {}
    for set_name, kind in targets:
        values = scores.get(set_name, {}).get(kind, [])
        if len(values):
            shares[set_name, kind] = share_right(kind, values, threshold)
    return shares


def thresholds_meeting_targets(scores, thresholds=THRESHOLDS, targets=KIND_TARGETS):
    """The thresholds at which every targeted kind reaches its target (all of them measured)."""
    met = []
    for t in thresholds:
        shares = shares_at(scores, t, targets)
        if len(shares) == len(targets) and all(shares[k] >= targets[k] for k in targets):
            met.append(t)
    return met


BELOW_NOSE = ("held-out scenes", "mask_weared_incorrect")


def best_with_others_at_target(scores, kind=BELOW_NOSE, targets=KIND_TARGETS):
    """The most faces of one kind (masks below the nose) any threshold calls right while every
    other targeted kind meets its target: two models compared at equal accuracy on the others,
    not each at its own threshold. {"right", "total", "threshold"}, or None when no threshold
    lets the others meet their targets."""
    values = scores.get(kind[0], {}).get(kind[1], [])
    candidates = {v for s in scores.values() for vs in s.values() for v in vs} | {0.5}
    others = {k: t for k, t in targets.items() if k != kind}
    best = None
    for t in sorted(candidates):
        shares = shares_at(scores, t, others)
        if len(shares) < len(others) or any(shares[k] < others[k] for k in others):
            continue
        right = round(share_right(kind[1], values, t) * len(values)) if len(values) else 0
        if best is None or right > best["right"]:
            best = {"right": right, "total": len(values), "threshold": float(t)}
    return best


def summary(scores, threshold, thresholds=THRESHOLDS, targets=KIND_TARGETS):
    """What the card says of one candidate: each kind's share at its own threshold, the
    thresholds (of `thresholds`) at which all kinds meet their targets, and the most masks below
    the nose any threshold gives with the other kinds at their targets."""
    shares = shares_at(scores, threshold, targets)
    return {"at_threshold": {f"{s}: {k}": v for (s, k), v in shares.items()},
            "thresholds_meeting_all_targets": thresholds_meeting_targets(scores, thresholds, targets),
            "below_nose_with_others_at_target": best_with_others_at_target(scores, targets=targets)}


def plot_tradeoff(curves, path, targets=KIND_TARGETS):
    """One line per candidate over the thresholds: masks worn correctly called right (x) against
    masks below the nose called no_mask (y), the candidate's own threshold marked, the target
    corner shaded. `curves`: {label: (scores, threshold)}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key, y_key = ("real-world scenes", "with_mask"), BELOW_NOSE
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    ax.fill_between([targets[x_key], 1.0], targets[y_key], 1.0, color="#dff0d8", zorder=0)
    ax.axvline(targets[x_key], color="green", linewidth=0.8, linestyle="--")
    ax.axhline(targets[y_key], color="green", linewidth=0.8, linestyle="--")
    for label, (scores, threshold) in curves.items():
        points = [shares_at(scores, t, targets) for t in THRESHOLDS]
        xs = [p.get(x_key, np.nan) for p in points]
        ys = [p.get(y_key, np.nan) for p in points]
        line, = ax.plot(xs, ys, "-", marker=".", markersize=3, label=label)
        own = shares_at(scores, threshold, targets)
        ax.plot(own.get(x_key, np.nan), own.get(y_key, np.nan), "o", color=line.get_color(),
                markersize=8, markeredgecolor="black")
    ax.set(xlabel="masks worn correctly called mask (real-world scenes)",
           ylabel="masks below the nose called no_mask (held-out scenes)",
           title="Every threshold of each model (dot: the threshold it ships with);\n"
                 "the targets are the dashed lines, met together only in the upper right")
    ax.set_xlim(0.85, 1.0)
    ax.set_ylim(0.6, 1.0)
    ax.grid(True, linewidth=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
