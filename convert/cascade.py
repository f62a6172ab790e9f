"""A second opinion: a second quantized classifier asked only about the faces the first is
unsure of, and those faces decided by the mean of the two.

Two models trained on one split disagree mostly near the threshold; there, on the shipped pair,
the mean of the two was right more often than the first model alone (MODEL_CARD.md). Asking the second model about every face costs its time on every face;
asking it only where its answer could change the first's decision costs it on a few. Everything
is chosen on the validation split the two share: the threshold on the mean (by the per-kind
targets, as `quantize` chooses a model's own), and the band of the first model's P(no mask) that
holds every validation face whose decision the mean changes, widened by BAND_MARGIN in log-odds.
On validation the pair then decides every face as the mean does (outside the band the two agree),
so the threshold is the pair's own by the same rule. The second model runs on the CPU.
The Pi reads the result from the metadata's `second_opinion` (edge/inference/classifier.py).
"""
import copy
import logging
import math
import os
import shutil

import numpy as np

from edge.errors import DataError
from edge.inference.classifier import no_mask_score
from edge.inference.model_meta import sha256_of

from . import evaluate, metrics, run_folder
from .evaluation_sets import read_split
from .scorers import tflite_scorer

log = logging.getLogger(__name__)

# Log-odds added on each side of the band found on validation: faces a little outside what the
# validation split showed are asked too (shipped pair: 9.1 % of real-world faces asked, against
# 5.2 % with the band as found).
BAND_MARGIN = 0.5


def check_pair(first_run, second_run, first, second):
    """DataError unless the two runs can share a face: the same labels, normalization and
    framing, both through the int8 gate, and one split (so validation is new to both)."""
    for key in ("labels", "no_mask_labels", "positive_label"):
        if first.get(key) != second.get(key):
            raise DataError(f"{first_run} and {second_run} differ in {key}: {first.get(key)} "
                            f"against {second.get(key)}")
    for key in ("normalization", "crop_margin"):
        if first["input"][key] != second["input"][key]:
            raise DataError(f"{first_run} and {second_run} prepare faces differently ({key})")
    for run, meta in ((first_run, first), (second_run, second)):
        if not meta.get("quality_gate", {}).get("passed", False):
            raise DataError(f"{run} failed the int8 quality gate: it cannot give an opinion")
        if "second_opinion" in meta:
            raise DataError(f"{run} is already a pair: pair the quantized runs of single models")
    if read_split(first_run) != read_split(second_run):
        raise DataError(f"{first_run} and {second_run} were split differently: a face one trained "
                        "on would be in the other's validation; pair runs of one split")


def _logit(p):
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def choose_band(first_p, mean_p, first_threshold, threshold, margin=BAND_MARGIN):
    """[low, high] of the first model's P(no mask) holding every face whose decision the mean
    changes, widened by `margin` in log-odds; DataError when the mean changes none."""
    first_p, mean_p = np.asarray(first_p, np.float64), np.asarray(mean_p, np.float64)
    changed = (mean_p >= threshold) != (first_p >= first_threshold)
    if not changed.any():
        raise DataError("the second model changes no validation decision of the first: a "
                        "second opinion would add nothing")
    low, high = float(first_p[changed].min()), float(first_p[changed].max())
    return [_sigmoid(_logit(low) - margin), _sigmoid(_logit(high) + margin)]


def decide(first_p, second_p, first, opinion):
    """(no-mask score with the threshold at 0.5, asked) per face, as the Pi decides: the first
    model's P(no mask) on its own threshold and scale, or in the band the mean of the two on the
    second opinion's."""
    first_p, second_p = np.asarray(first_p, np.float64), np.asarray(second_p, np.float64)
    low, high = opinion["band"]
    asked = (first_p >= low) & (first_p <= high)
    scale = first.get("score_scale", 1.0)
    alone = [no_mask_score(p, first["threshold"], scale) for p in first_p]
    both = [no_mask_score(m, opinion["threshold"], opinion["score_scale"])
            for m in (first_p + second_p) / 2]
    return np.where(asked, both, alone), asked


def scorer_of(run_dir, meta):
    """(score images -> scores, threshold) deciding as the Pi does: a single model's P(no mask)
    and its threshold, or for a pair its no-mask scores on one centred scale (two thresholds
    map to 0.5) and 0.5."""
    first = tflite_scorer(run_folder.path(run_dir, meta["files"]["int8"]))
    opinion = meta.get("second_opinion")
    if opinion is None:
        return first, meta["threshold"]
    second = tflite_scorer(run_folder.path(run_dir, meta["files"]["second_opinion"]))

    def score(images):
        first_p = first(images)
        low, high = opinion["band"]
        asked = [i for i, p in enumerate(first_p) if low <= p <= high]
        second_p = np.zeros(len(first_p))
        if asked:
            second_p[asked] = second([images[i] for i in asked])
        return decide(first_p, second_p, meta, opinion)[0]

    return score, 0.5


def cost_per_face(first_latency, second_latency, asked_share):
    """Expected CPU time per face of a pair: the first model on every face, the second on the
    share asked (on the real-world faces); the timings of each kept beside it. Its `p90_ms` is
    the first's p90 plus the share of the second's (a bound, not a percentile of the pair)."""
    out = dict(first_latency)
    for key in ("median_ms", "p90_ms"):
        out[key] = first_latency[key] + asked_share * second_latency[key]
    out.update(first_model=first_latency, second_opinion=second_latency,
               second_opinion_share=asked_share)
    return out


def make_cascade(first_run, second_run, out_dir, sets, name="mask_classifier"):
    """Write to `out_dir` a run of the first model with the second as its second opinion: both
    int8 models, the metadata (`second_opinion`, metrics of the pair) and the pair's plots.
    `sets`: the validation split (images at their own size) and the test sets."""
    first, second = run_folder.read_metadata(first_run, name), run_folder.read_metadata(second_run, name)
    check_pair(first_run, second_run, first, second)
    scores = {}
    for run, meta in ((first_run, first), (second_run, second)):
        log.info("scoring with %s", run)
        scores[run] = evaluate.score_sets(
            tflite_scorer(run_folder.path(run, meta["files"]["int8"])), sets)
    validation = next(s for s in sets if s.name == run_folder.VALIDATION)
    mean_val = (scores[first_run][validation.name] + scores[second_run][validation.name]) / 2
    threshold = evaluate.shipped_threshold(validation, mean_val)
    opinion = {"input_size": second["input"]["size"], "threshold": threshold,
               "score_scale": metrics.fit_score_scale(validation.labels, mean_val, threshold),
               "band": choose_band(scores[first_run][validation.name], mean_val,
                                   first["threshold"], threshold),
               "run": run_folder.portable_path(os.path.abspath(second_run))}
    decided, asked = {}, {}
    for s in sets:
        decided[s.name], was_asked = decide(scores[first_run][s.name], scores[second_run][s.name],
                                            first, opinion)
        asked[s.name] = float(np.mean(was_asked)) if len(was_asked) else 0.0
    opinion["asked"] = asked
    reports = evaluate.evaluate_scores(sets, decided, threshold=0.5)
    meta = _pair_meta(first, second, opinion, reports, sets, decided, name)
    _write_run(first_run, second_run, first, second, meta, reports, out_dir, name)
    log.info("\n%s", evaluate.summary_line("int8 with a second opinion", reports))
    log.info("second opinion asked about %s of the faces",
             ", ".join(f"{share:.1%} ({set_name})" for set_name, share in asked.items()))
    return meta


def _pair_meta(first, second, opinion, reports, sets, decided, name):
    """The first model's metadata with the second opinion and the pair's measurements."""
    meta = copy.deepcopy(first)
    second_file = f"{name}_second_int8.tflite"
    meta["files"]["second_opinion"] = second_file
    meta["second_opinion"] = opinion
    meta["metrics"]["first_model_alone"] = {"int8": first["metrics"]["int8"],
                                            "int8_correct_by_kind":
                                                first["metrics"].get("int8_correct_by_kind", {})}
    meta["metrics"]["int8"] = evaluate.strip_curves(reports)
    meta["metrics"]["int8_correct_by_kind"] = {
        s.name: metrics.correct_by_kind(s.kinds, s.labels, decided[s.name], 0.5)
        for s in sets if s.kinds}
    meta["training"] = dict(first["training"], second_opinion=second["training"])
    meta["size_bytes"] = first["size_bytes"] + second["size_bytes"]
    return meta


def _write_run(first_run, second_run, first, second, meta, reports, out_dir, name):
    """Both models, the split, the metadata (with the second model's sha256) and the plots."""
    os.makedirs(out_dir, exist_ok=True)
    second_file = meta["files"]["second_opinion"]
    shutil.copyfile(run_folder.path(first_run, first["files"]["int8"]),
                    run_folder.path(out_dir, meta["files"]["int8"]))
    shutil.copyfile(run_folder.path(second_run, second["files"]["int8"]),
                    run_folder.path(out_dir, second_file))
    meta["sha256"][second_file] = sha256_of(run_folder.path(out_dir, second_file))
    for file in (run_folder.SPLIT, run_folder.TRAINING_CURVES):
        if os.path.isfile(run_folder.path(first_run, file)):
            shutil.copyfile(run_folder.path(first_run, file), run_folder.path(out_dir, file))
    evaluate.write_report(reports, run_folder.path(out_dir, run_folder.eval_report("int8")))
    evaluate.write_plots(reports, out_dir, "int8")
    run_folder.write_metadata(meta, run_folder.path(out_dir, run_folder.metadata_file(name)))
