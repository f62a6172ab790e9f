"""Judge a classifier: metrics on the validation split and on real-world scene faces, with plots.

The decision threshold is chosen on validation scores only and then applied unchanged to the
real-world faces: the one that brings every kind of face (masks, bare faces, masks below the nose)
closest to or furthest over its target (`targets.py`), so the rarest kind weighs as much as the
commonest.
"""
import json
import logging
import os

import numpy as np

from . import metrics, run_folder
from .plots import plot_confusion, plot_curves
from .targets import TARGET_OF_KIND

log = logging.getLogger(__name__)


def score_sets(scorer, sets):
    """{set name: P(no mask) array} for each EvalSet."""
    return {s.name: np.asarray(scorer(s.images), dtype=np.float64) for s in sets}


def evaluate_scores(sets, scores, threshold=None, validation_name=run_folder.VALIDATION):
    """Metric reports for each set; the threshold comes from the validation set unless given:
    by the per-kind targets where validation knows each face's kind, else by balanced accuracy."""
    by_name = {s.name: s for s in sets}
    if threshold is None:
        threshold = shipped_threshold(by_name[validation_name], scores[validation_name])
    return {name: metrics.report(by_name[name].labels, scores[name], threshold) for name in scores}


def shipped_threshold(validation, scores):
    """The threshold a model ships with, from its validation scores only."""
    if validation.kinds and all(validation.kinds):
        return metrics.choose_threshold_for_kinds(validation.labels, scores, validation.kinds,
                                                  TARGET_OF_KIND)
    return metrics.choose_threshold(validation.labels, scores)


def write_plots(reports, out_dir, tag):
    """Confusion matrix PNG per set and one ROC / PR PNG; returns the file names."""
    os.makedirs(out_dir, exist_ok=True)
    files = []
    for name, rep in reports.items():
        file = run_folder.confusion_plot(tag, name)
        title = f"{tag}, {name}\nbalanced accuracy {rep['balanced_accuracy']:.3f}"
        plot_confusion(rep["confusion"], title, os.path.join(out_dir, file))
        files.append(file)
    curves = {name: {**rep["curves"], "roc_auc": rep["roc_auc"],
                     "average_precision": rep["average_precision"]} for name, rep in reports.items()}
    plot_curves(curves, os.path.join(out_dir, run_folder.curves_plot(tag)))
    files.append(run_folder.curves_plot(tag))
    return files


def summary_line(tag, reports):
    """One readable line per set: balanced accuracy, recall of each class, counts."""
    lines = []
    for name, rep in reports.items():
        pc = rep["per_class"]
        lines.append(f"{tag:>10} {name:<18} n={rep['n']:<5} balanced_acc={rep['balanced_accuracy']:.4f} "
                     f"acc={rep['accuracy']:.4f} recall(mask)={pc['mask']['recall']:.3f} "
                     f"recall(no_mask)={pc['no_mask']['recall']:.3f} auc={rep['roc_auc']:.3f}")
    return "\n".join(lines)


def strip_curves(reports):
    """Reports without the long curve arrays (for metadata files)."""
    return {name: {k: v for k, v in rep.items() if k != "curves"} for name, rep in reports.items()}


def write_report(reports, path):
    """Write reports (curves included) as JSON."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(reports, handle, indent=1)
