"""`maskdet bench`: detector recall on annotated scenes, per-stage latency per backend and
runtime, and the baseline (res10 + float Keras MobileNetV2, the recipe of the best-known
mask-detection project) on the same frames (one-face 720p video frames, photos of 4 to 8 faces);
the classifier's cost per face, batched or not; JSON results and BENCHMARKS.md."""
import datetime
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

from edge.bench.detector_recall import evaluate_detector
from edge.bench.frames import image_frames, load_frames, multi_face_photos
from edge.bench.latency import (WAYS, classifier_on, classify_costs, measure_pipeline,
                                single_thread_pipeline)
from edge.bench.scene_quality import evaluate_pipeline
from edge.inference.accelerator import AcceleratorSettings
from edge.inference.detectors import DetectorSettings, create_detector
from edge.inference.fetch import cache_dir
from edge.inference.runtime import RUNTIME_MODULES
from edge.paths import REPO_ROOT, shared_path

log = logging.getLogger(__name__)

BACKENDS = {
    "blazeface-full": DetectorSettings("blazeface", variant="full"),
    "blazeface-short": DetectorSettings("blazeface", variant="short"),
    "yunet (full frame)": DetectorSettings("yunet", detect_width=0),
    "yunet@320": DetectorSettings("yunet", detect_width=320),
    "yunet@480": DetectorSettings("yunet", detect_width=480),
    "yunet@640": DetectorSettings("yunet", detect_width=640),
    "yunet@480 opencv": DetectorSettings("yunet", detect_width=480, engine="opencv"),
    "res10": DetectorSettings("res10"),
    "yunet-int8 (480x288)": DetectorSettings("yunet-int8"),
}
DEFAULT_BACKEND = next(name for name, s in BACKENDS.items() if s.resolved() == DetectorSettings().resolved())
SCENE_SETS = {"scenes": ("data", "scenes", "annotations.json"),
              "macwin": ("data", "scenes_more", "macwin", "annotations.json")}
# Where the photos of several faces are chosen from (all annotated sets).
MULTI_FACE_SETS = dict(SCENE_SETS, ilc2021=("data", "scenes_more", "ilc2021", "annotations.json"))
VIDEOS = ("one_unmasked.mp4", "one_masked.mp4", "putting_on_mask.mp4")
IMAGES = ("four_faces.jpg", "grace_hopper.jpg")
HD_ONE_FACE, MULTI_FACE, ALL_FRAMES = "720p one face", "multi-face photos", "all images and videos"
BATCH_THREADS = (1, 2)


def bench_outputs(out_dir=None, update_repo=False):
    """(results JSON, markdown report) paths: the repository's own files only when asked, else
    `out_dir` or the cache's `bench/` folder."""
    if update_repo:
        return (os.path.join(REPO_ROOT, "benchmarks", "results.json"),
                os.path.join(REPO_ROOT, "BENCHMARKS.md"))
    folder = out_dir or os.path.join(cache_dir(), "bench")
    return os.path.join(folder, "results.json"), os.path.join(folder, "BENCHMARKS.md")


def available_runtimes():
    """The TFLite runtimes importable here (TensorFlow only if installed)."""
    return [name for name, module in RUNTIME_MODULES if importlib.util.find_spec(name) is not None]


def detector_recall(backends):
    """Recall tables for each backend on each annotated scene set."""
    results = {}
    for name, settings in backends.items():
        detector = create_detector(settings, AcceleratorSettings(mode="cpu", threads=1))
        for set_name, parts in SCENE_SETS.items():
            path = shared_path(*parts)
            if os.path.isfile(path):
                log.info("recall: %s on %s", name, set_name)
                results[f"{name} / {set_name}"] = evaluate_detector(detector, path)
    return results


def latency(backends, classifier_meta, frames_by_set, runtimes):
    """Stage timings for each backend x runtime x frame set (one round)."""
    results = {}
    for runtime in runtimes:
        for name, settings in backends.items():
            pipeline = single_thread_pipeline(settings, classifier_meta, runtime)
            for set_name, frames in frames_by_set.items():
                log.info("latency: %s on %s, %s", name, runtime, set_name)
                results[f"{name} / {runtime} / {set_name}"] = measure_pipeline(pipeline, frames)
    return results


def fastest_rounds(rounds):
    """Per key, the round with the lowest median total, and how many rounds there were.

    This machine's speed drifts by tens of percent within minutes (a shared virtual machine: the
    same YuNet step measured 6.2 and 8.6 ms in one run), and drift only ever adds time, so every
    measurement is repeated in interleaved rounds and its fastest round kept, ours and the
    baseline's alike."""
    best = {}
    for results in rounds:
        for key, row in (results or {}).items():
            if key not in best or row["stages_ms"]["total"]["median"] < best[key]["stages_ms"]["total"]["median"]:
                best[key] = dict(row, rounds=len(rounds))
    return best


def scene_quality(backends, classifier_meta, runtime):
    """Detect + classify on data/scenes: recall of faces >= 48 px and label accuracy, per backend."""
    path = shared_path(*SCENE_SETS["scenes"])
    return {name: evaluate_pipeline(single_thread_pipeline(settings, classifier_meta, runtime), path)
            for name, settings in backends.items()}


def baseline(frames):
    """The baseline (res10 + float Keras MobileNetV2) on the same frames (all of one size), in a
    process with TensorFlow (None without it)."""
    if importlib.util.find_spec("tensorflow") is None or not frames:
        return None
    if len({frame.shape for _, frame, _ in frames}) != 1:
        log.warning("the baseline takes frames of one size; these differ: not measured")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        frames_file, out_file = os.path.join(tmp, "frames.npz"), os.path.join(tmp, "baseline.json")
        np.savez(frames_file, frames=np.stack([f for _, f, _ in frames]),
                 decode_ms=np.array([d for _, _, d in frames]))
        proc = subprocess.run([sys.executable, "-m", "convert.baseline_bench", frames_file, out_file],
                              capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        if proc.returncode != 0:
            log.warning("the baseline (res10 + float Keras MobileNetV2) failed: %s",
                        proc.stderr[-1000:])
            return None
        with open(out_file, encoding="utf-8") as handle:
            return json.load(handle)


def multi_face_set():
    """The photos of 4 to 8 faces (see `multi_face_photos`) from the annotated sets present."""
    paths = [shared_path(*parts) for parts in MULTI_FACE_SETS.values()]
    return multi_face_photos([p for p in paths if os.path.isfile(p)])


def describe_photos(photos, frames):
    """What the results say about the photos of several faces (their decoded `frames`)."""
    return {"photos": [os.path.relpath(path, shared_path()) for path, _ in photos],
            "annotated_faces": sum(len(boxes) for _, boxes in photos),
            "size": f"{frames[0][1].shape[1]}x{frames[0][1].shape[0]}" if frames else None}


def classifier_batches(classifier_meta, runtimes, photos):
    """Per-face cost of the classify stage at 1..8 faces, batched or one invoke per face, per
    runtime and thread count (one round), on the faces of the photo with the most of them."""
    if not photos:
        return {}
    path, boxes = max(photos, key=lambda p: len(p[1]))
    _, frame, _ = next(image_frames([path]))
    cv2.setNumThreads(1)
    results = {}
    for runtime in runtimes:
        for threads in BATCH_THREADS:
            log.info("classifier batches: %s, %d thread(s)", runtime, threads)
            classifier = classifier_on(classifier_meta, runtime, threads)
            results[f"{runtime} / {threads}"] = dict(classify_costs(classifier, frame, boxes),
                                                     runtime=runtime, threads=threads,
                                                     photo=os.path.relpath(path, shared_path()))
    return results


def fastest_costs(rounds):
    """Per key, each cost (way and number of faces) at its lowest over the rounds."""
    best = {}
    for results in rounds:
        for key, row in (results or {}).items():
            if key not in best:
                best[key] = dict(row, rounds=len(rounds))
                best[key].update({way: dict(row[way]) for way in WAYS})
                continue
            for way in WAYS:
                for n, ms in row[way].items():
                    best[key][way][n] = min(best[key][way].get(n, ms), ms)
    return best


def run_core(classifier_meta, per_video, backends, runtimes, rounds=3):
    """Detector recall, scene quality, per-stage latency, the baseline and the classifier's
    batches; the timings in `rounds` interleaved rounds (see `fastest_rounds`)."""
    hd_frames = load_frames([], [shared_path("data", "videos", "one_unmasked.mp4")], per_video)
    photos = multi_face_set()
    multi_frames = list(image_frames([path for path, _ in photos]))
    all_frames = load_frames([shared_path("data", "images", i) for i in IMAGES],
                             [shared_path("data", "videos", v) for v in VIDEOS], per_video)
    frame_sets = {HD_ONE_FACE: hd_frames, MULTI_FACE: multi_frames, ALL_FRAMES: all_frames}
    latency_rounds, baseline_rounds, batch_rounds = [], [], []
    for number in range(rounds):
        log.info("latency round %d of %d", number + 1, rounds)
        latency_rounds.append(latency(backends, classifier_meta,
                                      {k: v for k, v in frame_sets.items() if v}, runtimes))
        baseline_rounds.append({name: row for name in (HD_ONE_FACE, MULTI_FACE)
                                for row in [baseline(frame_sets[name])] if row})
        batch_rounds.append(classifier_batches(classifier_meta, runtimes, photos))
    return {
        "recall": detector_recall(backends),
        "latency": fastest_rounds(latency_rounds),
        "baseline": fastest_rounds(baseline_rounds),
        "classifier_batch": fastest_costs(batch_rounds),
        "multi_face_photos": describe_photos(photos, multi_frames),
        "scene_quality": scene_quality(backends, classifier_meta, runtimes[0]),
        "classifier": classifier_meta,
        "default_backend": DEFAULT_BACKEND,
        "per_video_frames": per_video,
    }


def stamp_rows(fresh, run_id):
    """Mark this run's latency and baseline rows, so rows kept from an earlier run (another
    runtime's venv) are not compared with this run's baseline as if timed beside it."""
    for table in ("latency", "baseline"):
        for row in fresh.get(table, {}).values():
            row["run"] = run_id


def run_bench(classifier_meta, out_json, out_markdown, per_video=60, backends=None, runtimes=None,
              daemon_minutes=0, core=True, rounds=3):
    """Run the measurements asked for, merge them into the JSON results (earlier parts are kept)
    and write BENCHMARKS.md from the whole."""
    from edge.bench.daemon_run import run_daemon_bench
    from edge.bench.report import render_markdown, upgrade_results, write_report

    os.makedirs(os.path.dirname(os.path.abspath(out_json)), exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(out_markdown)), exist_ok=True)
    results = {}
    if os.path.isfile(out_json):
        with open(out_json, encoding="utf-8") as handle:
            results = upgrade_results(json.load(handle))
    if core:
        backends = {k: BACKENDS[k] for k in (backends or BACKENDS)}
        fresh = run_core(classifier_meta, per_video, backends, runtimes or available_runtimes(), rounds)
        stamp_rows(fresh, time.strftime("%Y-%m-%dT%H:%M:%S"))
        for key, value in fresh.items():  # tables merge row by row: runs per runtime add up
            if isinstance(value, dict) and isinstance(results.get(key), dict):
                results[key].update(value)
            else:
                results[key] = value
    if daemon_minutes:
        results["daemon"] = run_daemon_bench(daemon_minutes, classifier_meta)
    if core or daemon_minutes:
        results["measured_on"] = datetime.date.today().isoformat()
    with open(out_json, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)
    write_report(out_markdown, render_markdown(results))
    return results


def run_decisions(classifier_meta, out_json, out_markdown, note="this model and defaults"):
    """`maskdet bench --decisions`: measure the decisions on held-out real faces into
    `decisions/` beside the results, keep their summary as the results' `decisions.after` (the
    `before` stays) and write the report again."""
    from edge.bench.decision_quality import run as measure_decisions
    from edge.bench.decision_report import write_outputs
    from edge.bench.report import decision_summary, render_markdown, write_report

    folder = os.path.join(os.path.dirname(out_json), "decisions")
    measured = measure_decisions(classifier_meta)
    write_outputs(measured, folder)
    summary = dict(decision_summary(measured), note=note)
    results = {}
    if os.path.isfile(out_json):
        with open(out_json, encoding="utf-8") as handle:
            results = json.load(handle)
    results.setdefault("decisions", {})["after"] = summary
    with open(out_json, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)
    write_report(out_markdown, render_markdown(results))
    return folder
