"""Classification metrics over P(no mask) scores, in plain numpy (positive class: no_mask)."""
import numpy as np

from .dataset import DECISIONS, FOLDER_LABELS, MASK


def confusion(y_true, y_pred):
    """2x2 counts, rows = truth, columns = prediction, in DECISIONS order."""
    matrix = np.zeros((len(DECISIONS), len(DECISIONS)), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def per_class(matrix):
    """{label: precision, recall, f1, support} from a confusion matrix."""
    out = {}
    for i, name in enumerate(DECISIONS):
        tp = matrix[i, i]
        predicted, actual = matrix[:, i].sum(), matrix[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                     "support": int(actual)}
    return out


def balanced_accuracy(y_true, y_pred):
    """Mean of the per-class recalls."""
    return balanced_accuracy_of(confusion(y_true, y_pred))


def balanced_accuracy_of(matrix):
    """Mean of the per-class recalls of a confusion matrix (rows: true labels); a class with
    no faces is left out."""
    matrix = np.asarray(matrix)
    recalls = [matrix[i, i] / matrix[i].sum() for i in range(len(DECISIONS)) if matrix[i].sum()]
    return float(np.mean(recalls))


def roc_curve(y_true, scores):
    """(fpr, tpr, thresholds) over every distinct score."""
    y_true = np.asarray(y_true)
    order = np.argsort(-np.asarray(scores), kind="stable")
    sorted_scores, sorted_true = np.asarray(scores)[order], y_true[order]
    distinct = np.r_[np.nonzero(np.diff(sorted_scores))[0], len(sorted_scores) - 1]
    tps = np.cumsum(sorted_true)[distinct]
    fps = (distinct + 1) - tps
    positives, negatives = max(tps[-1], 1), max(fps[-1], 1)
    return np.r_[0, fps / negatives], np.r_[0, tps / positives], sorted_scores[distinct]


def pr_curve(y_true, scores):
    """(precision, recall) over every distinct score."""
    fpr, tpr, _ = roc_curve(y_true, scores)
    positives = max(int(np.sum(y_true)), 1)
    negatives = max(len(y_true) - positives, 1)
    tp, fp = tpr[1:] * positives, fpr[1:] * negatives
    precision = tp / np.maximum(tp + fp, 1)
    return np.r_[1.0, precision], np.r_[0.0, tpr[1:]]


def auc(x, y):
    """Area under a curve by the trapezoid rule."""
    return float(np.trapezoid(y, x)) if hasattr(np, "trapezoid") else float(np.trapz(y, x))


def average_precision(y_true, scores):
    """Step-wise area under the precision-recall curve."""
    precision, recall = pr_curve(y_true, scores)
    return float(np.sum(np.diff(recall) * precision[1:]))


def share_right(kind, scores, threshold):
    """Share of faces of one annotation kind (`with_mask`, ...) called right at a threshold."""
    called_no_mask = np.asarray(scores, np.float64) >= threshold
    right = called_no_mask if FOLDER_LABELS[kind] != MASK else ~called_no_mask
    return float(np.mean(right))


def choose_threshold_for_kinds(y_true, scores, kinds, targets):
    """The P(no mask) threshold whose worst kind is furthest above (or least below) its target
    ({kind: share called right}); ties: the best balanced accuracy, then closest to 0.5. So the
    rarest kind (masks below the nose) weighs as much as the commonest."""
    scores, kinds = np.asarray(scores, np.float64), np.asarray(kinds)
    by_kind = {k: scores[kinds == k] for k in targets if np.any(kinds == k)}
    best_key, best = None, 0.5
    for t in np.unique(np.r_[scores, 0.5]):
        if not 0.0 < t < 1.0:
            continue
        margin = min(share_right(k, s, t) - targets[k] for k, s in by_kind.items())
        bacc = balanced_accuracy(y_true, (scores >= t).astype(int))
        key = (round(margin, 9), bacc, -abs(t - 0.5))
        if best_key is None or key > best_key:
            best_key, best = key, float(t)
    return best


def choose_threshold(y_true, scores):
    """The P(no mask) threshold with the best balanced accuracy (ties: closest to 0.5)."""
    candidates = np.unique(np.r_[np.asarray(scores, np.float64), 0.5])
    best = (-1.0, 0.0, 0.5)
    for t in candidates:
        if not 0.0 < t < 1.0:
            continue
        bacc = balanced_accuracy(y_true, (np.asarray(scores) >= t).astype(int))
        key = (bacc, -abs(t - 0.5))
        if key > best[:2]:
            best = (bacc, -abs(t - 0.5), float(t))
    return best[2]


def centred_log_odds(scores, threshold):
    """Each P(no mask)'s log-odds minus the threshold's, clipped as the Pi clips them."""
    from edge.inference.classifier import SCORE_EPSILON

    p = np.clip(np.asarray(scores, np.float64), SCORE_EPSILON, 1.0 - SCORE_EPSILON)
    t = float(np.clip(threshold, SCORE_EPSILON, 1.0 - SCORE_EPSILON))
    return np.log(p / (1.0 - p)) - np.log(t / (1.0 - t))


def fit_score_scale(y_true, scores, threshold, low=0.25, high=4.0, steps=241):
    """The factor k on the threshold-centred log-odds z whose sigmoid(k z) fits the labels best
    (least log loss): temperature scaling that keeps the threshold at 0.5. Above 1 the model was
    under-confident on these faces (a distilled student, taught softened scores), below 1 over."""
    y = np.asarray(y_true, np.float64)
    z = centred_log_odds(scores, threshold)
    factors = np.exp(np.linspace(np.log(low), np.log(high), steps))
    # log loss of sigmoid(k z) against y, written with logaddexp so no term overflows
    losses = [np.mean(np.logaddexp(0.0, -k * z) * y + np.logaddexp(0.0, k * z) * (1.0 - y))
              for k in factors]
    return float(factors[int(np.argmin(losses))])


def report(y_true, scores, threshold):
    """All metrics of one evaluation at a threshold, plus its ROC and PR curves."""
    y_true = np.asarray(y_true)
    y_pred = (np.asarray(scores) >= threshold).astype(int)
    matrix = confusion(y_true, y_pred)
    fpr, tpr, _ = roc_curve(y_true, scores)
    precision, recall = pr_curve(y_true, scores)
    return {
        "n": int(len(y_true)),
        "threshold": float(threshold),
        "accuracy": float(np.mean(y_pred == y_true)),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "per_class": per_class(matrix),
        "confusion": matrix.tolist(),
        "roc_auc": auc(fpr, tpr),
        "average_precision": average_precision(y_true, scores),
        "curves": {"fpr": fpr.tolist(), "tpr": tpr.tolist(),
                   "precision": precision.tolist(), "recall": recall.tolist()},
    }


def correct_by_kind(kinds, y_true, scores, threshold):
    """{annotation label: [correct, total]}: which kinds of face the errors fall on."""
    out = {}
    for kind, truth, score in zip(kinds, y_true, scores):
        row = out.setdefault(kind, [0, 0])
        row[0] += int((score >= threshold) == truth)
        row[1] += 1
    return out
