import numpy as np
import pytest

from convert import metrics
from convert.dataset import no_mask_truth


def test_confusion_and_balanced_accuracy():
    y_true = np.array([0, 0, 0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 1, 1, 0])
    assert metrics.confusion(y_true, y_pred).tolist() == [[3, 1], [1, 1]]
    assert metrics.balanced_accuracy(y_true, y_pred) == pytest.approx((0.75 + 0.5) / 2)


def test_per_class_precision_recall_f1():
    pc = metrics.per_class(np.array([[3, 1], [1, 1]]))
    assert pc["mask"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4}
    assert pc["no_mask"]["precision"] == 0.5 and pc["no_mask"]["support"] == 2


def test_roc_auc_of_perfect_random_and_inverted_scores():
    y = np.array([0, 0, 1, 1])
    fpr, tpr, _ = metrics.roc_curve(y, np.array([0.1, 0.2, 0.8, 0.9]))
    assert metrics.auc(fpr, tpr) == pytest.approx(1.0)
    fpr, tpr, _ = metrics.roc_curve(y, np.array([0.9, 0.8, 0.2, 0.1]))
    assert metrics.auc(fpr, tpr) == pytest.approx(0.0)
    fpr, tpr, _ = metrics.roc_curve(y, np.array([0.5, 0.5, 0.5, 0.5]))
    assert metrics.auc(fpr, tpr) == pytest.approx(0.5)


def test_average_precision_matches_a_hand_computed_value():
    # ranked: 1 (pos), 0.8 (neg), 0.6 (pos): AP = 0.5 * 1 + 0.5 * 2/3
    ap = metrics.average_precision(np.array([1, 0, 1]), np.array([1.0, 0.8, 0.6]))
    assert ap == pytest.approx(0.5 + 1 / 3)


def test_threshold_is_chosen_for_best_balanced_accuracy():
    y = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.05, 0.1, 0.3, 0.35, 0.9])
    t = metrics.choose_threshold(y, scores)
    assert 0.3 < t <= 0.35
    assert metrics.report(y, scores, t)["balanced_accuracy"] == 1.0


def test_errors_are_counted_by_the_annotation_kind():
    out = metrics.correct_by_kind(["with_mask", "mask_weared_incorrect", "without_mask", "mask_weared_incorrect"],
                                  np.array([0, 1, 1, 1]), np.array([0.1, 0.2, 0.9, 0.8]), 0.5)
    assert out == {"with_mask": [1, 1], "mask_weared_incorrect": [1, 2], "without_mask": [1, 1]}


def test_the_threshold_for_kinds_lifts_the_rare_kind_that_balanced_accuracy_drowns():
    """100 masks (10 of them scoring 0.32-0.48), 100 bare faces, 10 masks below the nose scoring
    0.3-0.5: balanced accuracy (mask against no mask) gives up the rare kind for the masks; the
    per-kind rule brings the worst kind closest to its target."""
    kinds = ["with_mask"] * 100 + ["without_mask"] * 100 + ["mask_weared_incorrect"] * 10
    scores = np.r_[np.linspace(0.0, 0.2, 90), np.linspace(0.32, 0.48, 10),
                   np.linspace(0.8, 1.0, 100), np.linspace(0.3, 0.5, 10)]
    y = no_mask_truth([metrics.FOLDER_LABELS[k] for k in kinds])
    targets = {"with_mask": 0.98, "without_mask": 0.97, "mask_weared_incorrect": 0.90}

    def worst(t):
        return min(metrics.share_right(k, scores[np.array(kinds) == k], t) - targets[k]
                   for k in targets)

    balanced = metrics.choose_threshold(y, scores)
    for_kinds = metrics.choose_threshold_for_kinds(y, scores, kinds, targets)
    below = scores[200:]
    assert metrics.share_right("mask_weared_incorrect", below, balanced) <= 0.2
    assert metrics.share_right("mask_weared_incorrect", below, for_kinds) >= 0.8
    assert worst(for_kinds) > worst(balanced) + 0.5
    assert worst(for_kinds) == pytest.approx(max(worst(t) for t in scores if 0 < t < 1))


def test_with_no_threshold_meeting_every_target_the_worst_kind_is_brought_closest():
    kinds = ["with_mask"] * 10 + ["mask_weared_incorrect"] * 10
    scores = np.r_[np.linspace(0.0, 0.9, 10), np.linspace(0.05, 0.95, 10)]  # interleaved
    y = no_mask_truth([metrics.FOLDER_LABELS[k] for k in kinds])
    targets = {"with_mask": 0.98, "mask_weared_incorrect": 0.90}
    t = metrics.choose_threshold_for_kinds(y, scores, kinds, targets)
    margins = {k: metrics.share_right(k, scores[i:i + 10], t) - targets[k]
               for k, i in (("with_mask", 0), ("mask_weared_incorrect", 10))}
    every = [min(metrics.share_right(k, scores[i:i + 10], c) - targets[k]
                 for k, i in (("with_mask", 0), ("mask_weared_incorrect", 10))) for c in scores]
    assert min(margins.values()) == pytest.approx(max(every))


@pytest.mark.parametrize("true_scale", [0.6, 1.0, 1.6, 2.5])
def test_the_score_scale_recovers_how_much_softer_or_sharper_the_scores_were(true_scale):
    """Faces whose labels follow sigmoid(k z) while the model reports sigmoid(z) around its
    threshold: the fit finds k (a distilled student, taught softened scores, has k > 1)."""
    from convert.metrics import fit_score_scale

    rng = np.random.default_rng(int(true_scale * 10))
    threshold = 0.28
    z = rng.normal(0.0, 2.5, 20000)
    labels = (rng.random(z.size) < 1.0 / (1.0 + np.exp(-true_scale * z))).astype(int)
    reported = 1.0 / (1.0 + np.exp(-(z + np.log(threshold / (1 - threshold)))))
    assert fit_score_scale(labels, reported, threshold) == pytest.approx(true_scale, rel=0.08)
