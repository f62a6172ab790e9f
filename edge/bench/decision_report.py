"""The report of a decision-quality run (`decision_quality.run`): `decision_quality.json`, the
markdown with the recommended defaults and the rules behind them, and the figures.

    python -m edge.bench.decision_report --classifier models/mask_classifier.json --out DIR

measures and writes `DIR/decision_quality.json`, `DIR/decision_quality.md` and PNG figures
(`maskdet bench --decisions` does the same beside the bench's results).
"""
import argparse
import json
import logging
import os

import numpy as np

from edge.bench import decision_quality
from edge.bench.decision_quality import (BALANCED_TARGET, BAND_SCALES, BIN_FLOOR, CUT_FRACTIONS,
                                         KINDS, MATCH_IOU, MIN_BIN_FACES, PARTIAL_TOLERANCE,
                                         RECALL_BINS, TARGETS, VIDEO_STEP, recall_of, size_bin)
from edge.paths import default_classifier
from edge.service.decision import DecisionSettings

log = logging.getLogger(__name__)


def write_outputs(results, out_dir, figures=True):
    """`decision_quality.json`, the figures (when matplotlib is installed) and the markdown."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "decision_quality.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)
    names = write_figures(results, out_dir) if figures else []
    with open(os.path.join(out_dir, "decision_quality.md"), "w", encoding="utf-8") as handle:
        handle.write(render_markdown(results, names))



# --- the report --------------------------------------------------------------------------------

def _pct(cell):
    """`0.971 (34)`, or `- (0)` for an empty cell."""
    return "- (0)" if not cell["n"] else f"{cell['accuracy']:.3f} ({cell['n']})"


def _num(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def render_markdown(results, figures=()):
    """The report: one section and table per measurement, the recommendations first."""
    lines = ["# Decision quality on real held-out faces", "", _sources(results), ""]
    lines += _recommendations(results) + [""]
    lines += _size_gate_section(results["size_gate"]) + [""]
    lines += _threshold_section(results["threshold"], results["detector"]) + [""]
    lines += _border_section(results["border_cuts"]) + [""]
    if "band" in results:
        lines += _band_section(results["band"]) + [""]
    if results.get("kinds"):
        lines += _kind_section(results["kinds"]) + [""]
    lines += [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def _sources(results):
    data, det, cls = results["data"], results["detector"], results["classifier"]
    photos = "; ".join(f"{name}: {s['photos']} photos, " + ", ".join(f"{v} {k}" for k, v in
                                                                    s["faces"].items())
                       for name, s in data["photos"].items())
    videos = ", ".join(f"{n} ({k} frames)" for n, k in data["videos"].items())
    opinion = cls.get("second_opinion")
    second = "" if not opinion else (
        f"; with its second opinion `{opinion['file']}` (sha256 `{opinion['sha256'][:16]}…`) on "
        f"the faces whose P lies within {opinion['band'][0]:.3f}-{opinion['band'][1]:.3f}, "
        f"decided by the mean of both at >= {opinion['threshold']}")
    return (f"Classifier `{cls['meta']}` (sha256 `{cls['sha256'][:16]}…`, no_mask at P >= "
            f"{cls['threshold']}{second}). Detector {det['type']} at {det['detect_width']} px wide; a "
            f"detection matches an annotated face at IoU >= {det['match_iou']}. Photos: {photos}. "
            f"Videos, every {data['video_step']}th frame: {videos}. Run time {results['seconds']} s.")


def _recommendations(results):
    gate, current = results["size_gate"]["recommendation"], results["size_gate"]["current_min_face_size"]
    thr, part = results["threshold"]["recommendation"], results["border_cuts"]["recommendation"]
    rule = (f"in every bin from that size up, bare faces >= {TARGETS['without_mask']} and "
            f"correct masks >= {TARGETS['with_mask']}" if gate["rule"] == "per_kind" else
            f"the balanced accuracy (mask against no mask) of all faces at and above that size >= "
            f"{BALANCED_TARGET}, and no bin from that size up below {BIN_FLOOR} (a bin of about 20 "
            f"no-mask faces measures to about 5 points); the per-kind targets (bare >= {TARGETS['without_mask']}, masks >= "
            f"{TARGETS['with_mask']}) cannot be applied: {len(gate['sparse_bins'])} kind x bin "
            f"cells hold fewer than {MIN_BIN_FACES} faces ({', '.join(gate['sparse_bins'])}); "
            f"the per-kind rule alone gives {gate['per_kind_min_face_size']}")
    worst = part["worst"]
    cut = ("too few faces per kind to tell" if worst is None else
           f"cut by {worst['fraction']} at the {worst['border']}, {worst['kind']} faces are right "
           f"{_num(worst['accuracy'])} of the time against {_num(worst['uncut_accuracy'])} uncut "
           "(the largest loss at the smallest cut measured)")
    return ["## Recommended defaults", "",
            f"- `classifier.min_face_size`: **{gate['min_face_size']}** px on the detector box's "
            f"shorter side (today {current}; over the faces that do not touch the frame's edge "
            f"only: {results['size_gate']['whole_faces_min_face_size']}). Rule: {rule}.",
            f"- detector threshold: **{thr['threshold']}** (today {thr['default']}). Rule: the "
            f"lowest threshold with no false face on the videos lasting >= "
            f"{DecisionSettings().min_frames} sampled frames at a classified size, and at most "
            f"{_num(thr['false_per_photo_ceiling'], 3)} false faces of a classified size per photo "
            f"(a fixed camera sees the same background in every frame, where a false face "
            f"persists). Recall of faces >= 48 px: "
            f"{_num(thr.get('recall_48_plus'))} (default {_num(thr.get('default_recall_48_plus'))}).",
            f"- faces cut by the frame's edge: **{part['rule']}**: {cut}. Rule: skip when any "
            f"border's smallest cut costs a kind (of >= {MIN_BIN_FACES} faces) more than "
            f"{PARTIAL_TOLERANCE} of accuracy."]


def _size_gate_section(gate):
    bins = gate["bins"]
    rec = gate["recommendation"]
    lines = ["## 1. The size gate: accuracy by the detector box's shorter side", "",
             f"{gate['matched_faces']} of {gate['annotated_faces']} annotated faces matched by "
             "a detection at the default threshold, each classified whatever its size. Cells: "
             "accuracy (faces). no_mask = bare and below the nose.", ""]
    rows = [[kind] + [_pct(gate["table"][kind][b]) for b in bins] for kind in KINDS + ("all",)]
    for label in ("mask", "no_mask"):
        rows.append([f"{label} (per bin)", "-"] +
                    [_pct(rec["balanced_by_bin"][b][label]) for b in bins[1:]])
    rows.append(["balanced (per bin)", "-"] +
                [_num(rec["balanced_by_bin"][b]["balanced"]) for b in bins[1:]])
    lines += _table(["kind"] + bins, rows) + [""]
    rows = [[f">= {e}", _pct(c["mask"]), _pct(c["no_mask"]), _num(c["balanced"])]
            for e, c in rec["balanced_from"].items()]
    lines += ["All faces at and above each size:", ""]
    return lines + _table(["detector box", "mask", "no_mask", "balanced"], rows)


def _threshold_section(section, detector):
    photos, videos = section["photos"], section["videos"]
    keys = [f"{k} {size_bin(lo, RECALL_BINS)}" for k in KINDS for lo, _ in RECALL_BINS]
    lines = ["## 2. The detector threshold: recall against false faces", "",
             "Recall by kind and annotated face size on the photos. False faces = detections "
             "matching no annotated face (the scene photos leave some background faces "
             "unannotated: an upper bound); classified = at least the size gate. On the videos, "
             "false = every detection but the real person's (the best-scoring one; two during the "
             "split screen that opens putting_on_mask.mp4); persistent = lasting >= "
             f"{DecisionSettings().min_frames} consecutive sampled frames at IoU >= "
             f"{DecisionSettings().track_iou}. Default: {detector['default_threshold']}.", ""]
    rows = [[t] + [_pct(photos[t]["recall"].get(k, {"n": 0})) for k in keys] for t in photos]
    lines += _table(["threshold"] + keys, rows) + [""]
    rows = [[t, _num(photos[t]["false_per_photo"], 2),
             _num(photos[t]["classifiable_false_per_photo"], 3), videos[t]["frames"],
             _num(videos[t]["false_per_frame"], 3), videos[t]["persistent"],
             videos[t]["persistent_classified"]] for t in photos]
    return lines + _table(["threshold", "false faces / photo", "classified false faces / photo",
                           "video frames", "false faces / video frame", "persistent",
                           "persistent, classified"], rows)


def _border_section(section):
    lines = ["## 3. Faces cut by the frame's edge", "",
             f"{section['faces']} annotated faces >= {section['min_side']} px shown whole, cut at "
             "each border by a fraction of the face box; the clipped box is classified. Cells: "
             "accuracy cut / uncut (faces); `found`: YuNet (default threshold) still finds the "
             "cut face; `flipped`: verdicts that changed.", ""]
    rows = []
    for border, by_fraction in section["table"].items():
        for fraction, row in by_fraction.items():
            rows.append([border, fraction] +
                        [f"{_num(row[k]['accuracy'])} / {_num(row[k]['uncut_accuracy'])} ({row[k]['n']})"
                         for k in KINDS + ("all",)] +
                        [_num(row["all"]["found"], 2), row["all"]["flipped"]])
    return lines + _table(["border", "cut"] + list(KINDS) + ["all", "found", "flipped"], rows)


def _band_section(section):
    lines = ["## 4. The decision band: how a person would be decided", "",
             f"Whole faces at or above the size gate ({section['min_face_size']} px), each taken "
             "as a person whose every frame scores like it: decided `no_mask` at a smoothed score "
             f">= {section['no_mask_above']}, `mask` at <= {section['mask_below']}, else not "
             "decided. Cells: right / wrong / undecided of n.", ""]
    rows = []
    for scale, by_kind in section["table"].items():
        rows.append([BAND_SCALES[scale]] +
                    [f"{c['right']} / {c['wrong']} / {c['undecided']} of {c['n']}"
                     for c in (by_kind[k] for k in KINDS)])
    return lines + _table(["scale"] + list(KINDS), rows)


def _kind_section(section):
    lines = ["## 5. The kind of no mask: what a `no_mask` event's reason says", "",
             f"Whole faces at or above the size gate ({section['min_face_size']} px) that the "
             "classifier calls `no_mask`, by their annotated kind: how many it names a mask worn "
             "below the nose (`reason: mask_below_nose`); the rest it names a bare face.", ""]
    rows = [[kind, f"{c['named_below_nose']} of {c['n']}"] for kind, c in section["table"].items()]
    return lines + _table(["annotated kind", "named a mask below the nose"], rows)


# --- figures -----------------------------------------------------------------------------------

def write_figures(results, out_dir):
    """PNG figures (accuracy by box size, the threshold trade-off, accuracy by cut); [] without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no figures")
        return []
    names = []
    for name, draw in (("size_gate.png", _plot_size_gate), ("threshold.png", _plot_threshold),
                       ("border_cuts.png", _plot_borders)):
        fig = draw(plt, results)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, name), dpi=90)
        plt.close(fig)
        names.append(name)
    return names


def _plot_size_gate(plt, results):
    gate = results["size_gate"]
    fig, ax = plt.subplots(figsize=(8, 4))
    bins = gate["bins"]
    for kind in KINDS:
        cells = [gate["table"][kind][b] for b in bins]
        ax.plot(range(len(bins)), [c["accuracy"] if c["n"] else np.nan for c in cells], "o-",
                label=kind)
    per_bin = gate["recommendation"]["balanced_by_bin"]
    ax.plot(range(1, len(bins)), [per_bin[b]["balanced"] or np.nan for b in bins[1:]], "k--",
            label="balanced (mask / no mask)")
    for target in sorted(set(TARGETS.values()) | {BALANCED_TARGET}):
        ax.axhline(target, linestyle=":", linewidth=0.8, color="grey")
    ax.axvline(bins.index(size_bin(gate["current_min_face_size"])) - 0.5, color="red",
               linewidth=0.8, label="today's gate")
    if gate["recommendation"]["min_face_size"]:
        ax.axvline(bins.index(size_bin(gate["recommendation"]["min_face_size"])) - 0.5,
                   color="green", linewidth=0.8, label="recommended gate")
    ax.set_xticks(range(len(bins)), [b.replace(" px", "") for b in bins], fontsize=8)
    ax.set_xlabel("detector box, shorter side (px)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0.5, 1.02)
    ax.legend(fontsize=8)
    return fig


def _plot_threshold(plt, results):
    section = results["threshold"]
    ts = list(section["photos"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for bins, label in ((("24-48 px",), "recall 24-48 px"), (("48-96 px", ">= 96 px"), "recall >= 48 px")):
        ax.plot([float(t) for t in ts], [recall_of(section["photos"][t], bins) for t in ts], "o-",
                label=label)
    ax.set_xlabel("YuNet score threshold")
    ax.set_ylabel("recall")
    other = ax.twinx()
    other.plot([float(t) for t in ts], [section["photos"][t]["false_per_photo"] for t in ts],
               "s--", color="grey", label="false faces / photo")
    other.plot([float(t) for t in ts],
               [section["photos"][t]["classifiable_false_per_photo"] for t in ts],
               "^:", color="black", label="classified false faces / photo")
    other.set_ylabel("false faces / photo")
    ax.legend(loc="lower left", fontsize=8)
    other.legend(loc="upper right", fontsize=8)
    return fig


def _plot_borders(plt, results):
    table = results["border_cuts"]["table"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, kinds, title in ((axes[0], ("with_mask",), "masks worn correctly"),
                             (axes[1], ("without_mask", "mask_weared_incorrect"), "no mask")):
        for border, by_fraction in table.items():
            xs, ys = [0.0], []
            cells = [by_fraction[str(f)] for f in CUT_FRACTIONS]
            n0 = sum(cells[0][k]["n"] for k in kinds)
            ys.append(sum((cells[0][k]["uncut_accuracy"] or 0) * cells[0][k]["n"] for k in kinds)
                      / n0 if n0 else np.nan)
            for fraction, cell in zip(CUT_FRACTIONS, cells):
                n = sum(cell[k]["n"] for k in kinds)
                xs.append(fraction)
                ys.append(sum(cell[k]["correct"] for k in kinds) / n if n else np.nan)
            ax.plot(xs, ys, "o-", label=border)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("fraction of the face cut off")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=8)
    return fig


# --- command line ------------------------------------------------------------------------------

def main(argv=None):
    """`python -m edge.bench.decision_report`: measure and write the report."""
    parser = argparse.ArgumentParser(prog="python -m edge.bench.decision_report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", default=default_classifier(),
                        help="classifier metadata JSON (default: the shipped one)")
    parser.add_argument("--out", required=True, help="folder for the JSON, markdown and figures")
    parser.add_argument("--limit", type=int, help="only the first N photos (a quick check)")
    parser.add_argument("--video-step", type=int, default=VIDEO_STEP,
                        help="detect on every Nth video frame")
    parser.add_argument("--video-limit", type=int, help="at most N sampled frames per video")
    parser.add_argument("--match-iou", type=float, default=MATCH_IOU,
                        help="IoU at which a detection is an annotated face")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    results = decision_quality.run(args.classifier, args.limit, video_step=args.video_step,
                                   video_limit=args.video_limit, min_iou=args.match_iou)
    write_outputs(results, args.out, figures=not args.no_figures)
    print(os.path.join(args.out, "decision_quality.md"))
    print(json.dumps({"min_face_size": results["size_gate"]["recommendation"]["min_face_size"],
                      "threshold": results["threshold"]["recommendation"]["threshold"]}))


if __name__ == "__main__":
    main()
