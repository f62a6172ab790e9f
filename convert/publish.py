"""`publish`: pick the model by measurement and write the shipped model, metadata and card.

Each candidate run has been trained and quantized. The choice, where each candidate's int8 model
was measured on every kind of face the targets name (`targets.KIND_TARGETS`): among the runs
whose worst kind is within half a face of the nearest any run comes to its target (all of them,
when several meet every target), the one with the lowest int8 CPU latency (runs within 10 % of
it: the nearest to the targets, then the best on real-world faces). An entrance camera sees
a person for a second or two, so a faster classifier means more frames per person and a quicker,
steadier decision. Runs measured without the kinds are chosen as before issue 12: within half a
point of the best balanced accuracy on validation and on the real-world faces (and one point of
the best share of held-out masks below the nose), the fastest; else the best on real-world faces.
"""
import logging
import os
import shutil

from edge.errors import DataError, QualityGateError

from . import run_folder
from .cascade import cost_per_face, scorer_of
from .latency import measure_latency
from .model_card import KIND_NAMES, OLD_FIRST_TUNED_BLOCK, write_model_card
from .targets import KIND_TARGETS

log = logging.getLogger(__name__)

VAL_TOLERANCE = 0.005
REAL_TOLERANCE = 0.005
BELOW_NOSE_TOLERANCE = 0.01  # about one face of the held-out set
SHORTFALL_TOLERANCE = 0.005  # about half a face of the 113 held-out masks below the nose
SAME_SPEED = 1.1  # latencies within 10 % are one speed (one architecture measured twice)


def below_nose_recall(meta):
    """Share of the held-out masks below the nose called `no_mask` (int8), or None."""
    counts = meta["metrics"].get("int8_correct_by_kind", {}).get(run_folder.HELD_OUT_SCENES, {})
    right_total = counts.get("mask_weared_incorrect")
    return right_total[0] / right_total[1] if right_total and right_total[1] else None


def load_candidate(run_dir, name):
    """A quantized run's metadata plus its measured int8 latency."""
    meta = run_folder.read_metadata(run_dir, name)
    model_path = os.path.join(run_dir, meta["files"]["int8"])
    meta["latency_cpu_int8"] = measure_latency(model_path)
    if "second_opinion" in meta:  # a pair: the second model's time on the faces it is asked
        second = measure_latency(os.path.join(run_dir, meta["files"]["second_opinion"]))
        meta["latency_cpu_int8"] = cost_per_face(
            meta["latency_cpu_int8"], second,
            meta["second_opinion"]["asked"][run_folder.REAL_WORLD])
    meta["run"] = run_folder.portable_path(os.path.abspath(run_dir))
    return {"run": run_dir, "meta": meta, "model_path": model_path}


def shortfall(meta):
    """How far the int8 model's worst kind of face falls short of its target (0 when every kind
    meets its target), or None when the metadata lacks a kind the targets name."""
    by_kind = meta["metrics"].get("int8_correct_by_kind", {})
    gaps = []
    for (set_name, kind), target in KIND_TARGETS.items():
        right_total = by_kind.get(set_name, {}).get(kind)
        if not right_total or not right_total[1]:
            return None
        gaps.append(target - right_total[0] / right_total[1])
    return max(0.0, max(gaps))


def choose(candidates):
    """The candidate that serves an entrance camera best, and the reason in words."""
    gaps = [shortfall(c["meta"]) for c in candidates]
    if all(g is not None for g in gaps):
        return _choose_by_targets(candidates, gaps)
    return _choose_by_balanced_accuracy(candidates)


def _network(candidate):
    """Runs of one input size and one model file size are one network: they cost the same per
    face, whatever this machine's drifting speed measured for each."""
    meta = candidate["meta"]
    return meta["input"]["size"], meta.get("size_bytes")


def _choose_by_targets(candidates, gaps):
    """The fastest of the candidates nearest to meeting every per-kind target; of those as fast
    (the fastest's network, or within `SAME_SPEED`), the nearest, then the best balanced
    accuracy on real-world faces."""
    def latency(c):
        return c["meta"]["latency_cpu_int8"]["median_ms"]

    def nearest_then_real_world(pair):
        candidate, gap = pair
        return gap, -candidate["meta"]["metrics"]["int8"][run_folder.REAL_WORLD]["balanced_accuracy"]

    nearest = min(gaps)
    close = [(c, g) for c, g in zip(candidates, gaps) if g <= nearest + SHORTFALL_TOLERANCE]
    fastest = min((c for c, _ in close), key=latency)
    as_fast = [(c, g) for c, g in close if _network(c) == _network(fastest)
               or latency(c) <= latency(fastest) * SAME_SPEED]
    chosen = min(as_fast, key=nearest_then_real_world)[0]
    size = _model_words(chosen["meta"])
    which = "the fastest of the models" if len(close) > 1 else "the model"
    targets = ", ".join(f"{KIND_NAMES[kind]} {target:.2f} on the {set_name}"
                        for (set_name, kind), target in KIND_TARGETS.items())
    meets = "that meet" if len(close) > 1 else "that meets"
    where = (f"{meets} every target" if nearest == 0 else
             f"nearest to meeting every target (worst kind {nearest * 100:.1f} points short)")
    ties = ("" if len(as_fast) == 1 else
            f" ({len(as_fast)} of them count as one speed, the fastest's network or within "
            f"{(SAME_SPEED - 1) * 100:.0f} % of its latency: of those, the nearest to the targets, "
            "then the best balanced accuracy on the real-world scenes)")
    return chosen, (f"{size} is {which} {where} of faces called right ({targets}){ties}; "
                    "at an entrance, time per face buys frames per person, and frames per "
                    "person buy steadier decisions")


def _model_words(meta):
    """'128x128', or '128x128 with a 160x160 second opinion' for a pair."""
    size = meta["input"]["size"]
    opinion = meta.get("second_opinion")
    if opinion:
        return f"{size}x{size} with a {opinion['input_size']}x{opinion['input_size']} second opinion"
    return f"{size}x{size}"


def _choose_by_balanced_accuracy(candidates):
    """The rule for candidates measured without every kind of face (before issue 12)."""
    def bacc(c, split):
        return c["meta"]["metrics"]["int8"][split]["balanced_accuracy"]

    best_val = max(bacc(c, run_folder.VALIDATION) for c in candidates)
    best_real = max(bacc(c, run_folder.REAL_WORLD) for c in candidates)
    below = [below_nose_recall(c["meta"]) for c in candidates]
    best_below = max((b for b in below if b is not None), default=None)
    close = [c for c, b in zip(candidates, below)
             if bacc(c, run_folder.VALIDATION) >= best_val - VAL_TOLERANCE
             and bacc(c, run_folder.REAL_WORLD) >= best_real - REAL_TOLERANCE
             and (best_below is None or (b is not None and b >= best_below - BELOW_NOSE_TOLERANCE))]
    if not close:
        chosen = max(candidates, key=lambda c: bacc(c, run_folder.REAL_WORLD))
        return chosen, (f"no size is close to the best on every measure at once (validation, "
                        "real-world scenes, held-out masks below the nose), so "
                        f"{_model_words(chosen['meta'])}, "
                        f"the best on real-world scenes ({best_real:.4f}), the faces nearest an "
                        "entrance camera")
    chosen = min(close, key=lambda c: c["meta"]["latency_cpu_int8"]["median_ms"])
    which = "the fastest of the sizes" if len(close) > 1 else "the only size"
    reason = (f"{_model_words(chosen['meta'])} is {which} whose balanced accuracy is within "
              f"{VAL_TOLERANCE * 100:.1f} point of the best on validation ({best_val:.4f}) and on "
              f"real-world scenes ({best_real:.4f})"
              + ("" if best_below is None else f", and within {BELOW_NOSE_TOLERANCE * 100:.0f} point "
                 f"of the best share of held-out masks below the nose called no_mask ({best_below:.4f})")
              + "; "
              "at an entrance, time per face buys frames per person, and frames per person buy "
              "steadier decisions")
    return chosen, reason


def candidate_summary(meta):
    """What the card's size table shows of one run."""
    int8 = meta["metrics"]["int8"]
    return {"size": meta["input"]["size"], "run": meta.get("run"),
            "validation_balanced_accuracy": int8[run_folder.VALIDATION]["balanced_accuracy"],
            "real_world_balanced_accuracy": int8[run_folder.REAL_WORLD]["balanced_accuracy"],
            "latency_cpu_int8": meta["latency_cpu_int8"],
            "size_bytes": meta["size_bytes"],
            "below_nose_recall": below_nose_recall(meta),
            "teacher": _teacher_size(meta),
            "synthetic_below_nose": meta["training"].get("synthetic_below_nose", 0),
            "synthetic_over_nose": meta["training"].get("synthetic_over_nose", 0),
            "detector_framed_faces": meta["training"].get("detector_framed_faces", 0),
            "augmented_views": meta["training"].get("augmented_views"),
            "label_weight": (meta["training"].get("distillation") or {}).get("alpha"),
            "outputs": len(meta["labels"]),
            "first_tuned_block": meta["training"].get("first_tuned_block", OLD_FIRST_TUNED_BLOCK),
            "second_opinion": _second_opinion_words(meta)}


def _second_opinion_words(meta):
    """'the 160x160 model of <run> on 9 % of faces' for a pair, else None."""
    opinion = meta.get("second_opinion")
    if not opinion:
        return None
    size = opinion["input_size"]
    return (f"the {size}x{size} model of `{opinion['run']}` on the "
            f"{opinion['asked'][run_folder.REAL_WORLD]:.0%} of real-world faces the first is "
            f"least sure of")


TRADEOFF_PLOT = "kinds_tradeoff.png"


def _kind_tradeoff(candidates, sets, plot_path):
    """Per candidate, {"kinds": tradeoff.summary} over the sets with kinds (nothing without
    them), and the trade-off figure of them all."""
    if not any(s.kinds for s in sets):
        return [{} for _ in candidates]
    from . import tradeoff

    curves, out = {}, []
    for c in candidates:
        score, threshold = scorer_of(c["run"], c["meta"])  # a pair: on its own centred scale
        scores = tradeoff.kind_scores(score, sets)
        out.append({"kinds": tradeoff.summary(scores, threshold)})
        size = c["meta"]["input"]["size"]
        failed = "" if c["meta"].get("quality_gate", {"passed": True})["passed"] else \
            " (failed the int8 gate)"
        curves[f"{size}x{size}, {os.path.normpath(c['run'])}{failed}"] = (scores, threshold)
    tradeoff.plot_tradeoff(curves, plot_path)
    return out


def _teacher_size(meta):
    """'the 224x224 model of <its run folder>' (and so on for an ensemble of teachers) for a
    distilled candidate, else None."""
    from .distill import teachers_of

    distillation = meta["training"].get("distillation")
    if not distillation:
        return None
    return " and ".join(f"the {size}x{size} model of `{os.path.dirname(path)}`"
                        for path, size in teachers_of(distillation))


def _remove_stale(out_dir, name, meta):
    """Remove what the metadata in `out_dir` named and the new one does not (a previous pair's
    second model), and the `_edgetpu` build of every model whose bytes change: it was compiled
    from the old model, and would run in its place."""
    from edge.inference.accelerator import edgetpu_twin

    if not os.path.isfile(run_folder.path(out_dir, run_folder.metadata_file(name))):
        return  # a first publish
    try:
        old = run_folder.read_metadata(out_dir, name)
        old_files, old_sha = dict(old["files"]), dict(old["sha256"])
    except (DataError, KeyError, TypeError):
        return  # unreadable: nothing it names can be told apart
    new_files = set(meta["files"].values())
    for file in old_files.values():
        changed = file not in new_files or old_sha.get(file) != meta["sha256"].get(file)
        paths = [os.path.join(out_dir, file)] if file not in new_files else []
        paths += [edgetpu_twin(os.path.join(out_dir, file))] if changed else []
        for path in paths:
            if os.path.isfile(path):
                os.remove(path)
                log.info("removed %s: the published model no longer has it", path)


def publish(run_dirs, out_dir, name="mask_classifier", baseline=None, sets=()):
    """Copy the chosen run's int8 model and metadata to `out_dir` and write MODEL_CARD.md.
    Runs whose int8 model failed the quantization quality gate are not candidates. With `sets`
    that name each face's kind (real-world, held-out scenes), each candidate's kinds are
    measured at every threshold (`tradeoff`) and drawn for the card."""
    candidates, rejected = [], []
    for run in run_dirs:
        candidate = load_candidate(run, name)
        gate = candidate["meta"].get("quality_gate", {"passed": True})
        if gate["passed"]:
            candidates.append(candidate)
        else:
            log.warning("%s is not a candidate: %s", run, gate.get("reason"))
            rejected.append(candidate)
    if not candidates:
        raise QualityGateError("no run passed the quantization quality gate: nothing to publish")
    chosen, reason = choose(candidates)
    os.makedirs(os.path.join(out_dir, "card"), exist_ok=True)
    meta = dict(chosen["meta"])
    kinds = _kind_tradeoff(candidates + rejected, sets,
                           os.path.join(out_dir, "card", TRADEOFF_PLOT))
    meta["selection"] = {"reason": reason,
                         "candidates": [dict(candidate_summary(c["meta"]), **k)
                                        for c, k in zip(candidates, kinds)],
                         "not_candidates": [dict(candidate_summary(c["meta"]), **k,
                                                 why=c["meta"]["quality_gate"].get("reason"))
                                            for c, k in zip(rejected, kinds[len(candidates):])]}
    if baseline:
        meta["baseline"] = baseline
    _remove_stale(out_dir, name, meta)
    for file in meta["files"].values():
        shutil.copyfile(os.path.join(chosen["run"], file), os.path.join(out_dir, file))
    run_folder.write_metadata(meta, os.path.join(out_dir, run_folder.metadata_file(name)))
    for plot in run_folder.CARD_PLOTS:
        source = os.path.join(chosen["run"], plot)
        if os.path.isfile(source):
            shutil.copyfile(source, os.path.join(out_dir, "card", plot))
    write_model_card(meta, os.path.join(out_dir, "MODEL_CARD.md"))
    log.info("published %s (%s)", meta["files"]["int8"], reason)
    return meta
