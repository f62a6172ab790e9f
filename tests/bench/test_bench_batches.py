"""`maskdet bench` on frames of several faces: the photos chosen from the annotations, the
classifier's cost per face batched or not, and how the report sets both frame sets against the
baseline."""
import importlib.util
import json
import logging

import cv2
import numpy as np

from edge.bench.latency import classifier_on, classify_costs, measure_pipeline
from edge.bench.frames import multi_face_photos
from edge.bench.report import classifier_batch_table, latency_table, render_markdown, targets
from edge.bench.run import (DEFAULT_BACKEND, HD_ONE_FACE, MULTI_FACE, MULTI_FACE_SETS, baseline,
                            fastest_costs)
from edge.inference.geometry import Face
from edge.inference.pipeline import FaceMaskPipeline
from edge.inference.runtime import find_runtime
from edge.paths import default_classifier
from tests.conftest import shared_path


def test_the_multi_face_photos_are_chosen_from_the_annotations_alone():
    paths = [shared_path(*parts) for parts in MULTI_FACE_SETS.values()]
    photos = multi_face_photos(paths)
    assert 20 <= len(photos) <= 40 and photos == multi_face_photos(paths)  # deterministic
    sizes = set()
    for path, boxes in photos:
        assert 4 <= len(boxes) <= 8
        assert all(min(b[2] - b[0], b[3] - b[1]) >= 32 for b in boxes)
        sizes.add(cv2.imread(path).shape)
    assert len(sizes) == 1  # the baseline takes the frames as one array
    assert len({path for path, _ in photos}) == len(photos)


def face(x, side):
    return {"box": [x, 10, x + side, 10 + side], "label": "with_mask"}


def test_photos_of_the_most_common_size_are_spread_evenly(tmp_path):
    entries = [{"image": f"images/p{i:02d}.jpg", "width": 640, "height": 426,
                "faces": [face(40 * k, 32) for k in range(4 + i % 5)]} for i in range(12)]
    entries += [{"image": "images/other_size.jpg", "width": 400, "height": 300,
                 "faces": [face(40 * k, 40) for k in range(5)]},
                {"image": "images/too_few.jpg", "width": 640, "height": 426,
                 "faces": [face(40 * k, 40) for k in range(3)] + [face(200, 31)]},
                {"image": "images/too_many.jpg", "width": 640, "height": 426,
                 "faces": [face(40 * k, 40) for k in range(9)]}]
    annotations = tmp_path / "annotations.json"
    annotations.write_text(json.dumps(entries))
    photos = multi_face_photos([str(annotations)], count=4)
    names = [path.rsplit("/", 1)[-1] for path, _ in photos]
    assert names == ["p00.jpg", "p03.jpg", "p06.jpg", "p09.jpg"]
    assert [len(boxes) for _, boxes in photos] == [4, 7, 5, 8]
    assert len(multi_face_photos([str(annotations)], count=40)) == 12
    assert multi_face_photos([]) == []


def test_the_baseline_is_not_given_frames_of_several_sizes(caplog):
    frames = [("a", np.zeros((10, 20, 3), np.uint8), 1.0), ("b", np.zeros((20, 10, 3), np.uint8), 1.0)]
    with caplog.at_level(logging.WARNING):
        assert baseline(frames) is None
    if importlib.util.find_spec("tensorflow") is not None:  # it would run: refused, said why
        assert "frames of one size" in caplog.text
    assert baseline([]) is None


def test_the_classifier_costs_are_per_face_for_both_ways():
    photo = cv2.imread(shared_path("data", "images", "four_faces.jpg"))
    boxes = [(254, 50, 347, 173), (440, 121, 490, 183), (8, 103, 51, 160), (134, 86, 226, 206)]
    costs = classify_costs(classifier_on(default_classifier(), find_runtime().name, 1), photo, boxes,
                           sizes=(1, 3, 6), repeats=2)
    assert set(costs) == {"batched", "one_by_one"}
    for way in costs.values():
        assert set(way) == {"1", "3", "6"} and all(ms > 0 for ms in way.values())


def test_the_fastest_round_is_kept_per_way_and_number_of_faces():
    first = {"litert / 1": {"batched": {"1": 5.0, "2": 4.0}, "one_by_one": {"1": 5.1, "2": 5.0},
                            "runtime": "litert", "threads": 1}}
    second = {"litert / 1": {"batched": {"1": 4.5, "2": 4.4}, "one_by_one": {"1": 5.3, "2": 4.8},
                             "runtime": "litert", "threads": 1}}
    best = fastest_costs([first, second, {}])["litert / 1"]
    assert best["batched"] == {"1": 4.5, "2": 4.0} and best["one_by_one"] == {"1": 5.1, "2": 4.8}
    assert best["rounds"] == 3 and best["threads"] == 1
    assert first["litert / 1"]["batched"] == {"1": 5.0, "2": 4.0}  # the rounds are left alone


def test_the_pipeline_measurement_counts_the_faces_classified():
    class Fixed:
        name, placement = "fixed", None

        def detect(self, frame):
            return [Face((254, 50, 347, 173), 0.9), Face((10, 10, 30, 30), 0.8)]

    from edge.inference.classifier import MaskClassifier

    pipeline = FaceMaskPipeline(Fixed(), MaskClassifier.open(default_classifier()), 32)
    photo = cv2.imread(shared_path("data", "images", "four_faces.jpg"))
    row = measure_pipeline(pipeline, [("four_faces.jpg", photo, 1.0)] * 4, warmup=1)
    assert (row["frames"], row["faces"], row["classified"]) == (4, 8, 4)


def stages(detect, classify, decode=3.0):
    return {k: {"median": v, "p90": v} for k, v in
            {"decode": decode, "detect": detect, "classify": classify,
             "total": decode + detect + classify}.items()}


def results():
    key = f"{DEFAULT_BACKEND} / ai_edge_litert"
    return {
        "latency": {
            f"{key} / {HD_ONE_FACE}": {"frames": 60, "faces": 60, "classified": 60,
                                       "stages_ms": stages(6.0, 4.0), "fps": 77.0, "rounds": 3},
            f"{key} / {MULTI_FACE}": {"frames": 30, "faces": 150, "classified": 135,
                                      "stages_ms": stages(8.0, 22.0), "fps": 30.0, "rounds": 3},
            f"{key} / all images and videos": {"frames": 182, "faces": 200,
                                               "stages_ms": stages(5.0, 5.0), "fps": 60.0},
        },
        "baseline": {HD_ONE_FACE: {"frames": 57, "stages_ms": stages(60.0, 115.0), "fps": 5.0},
                     MULTI_FACE: {"frames": 27, "stages_ms": stages(85.0, 335.0), "fps": 2.3}},
        "classifier_batch": {"ai_edge_litert / 1": {
            "batched": {str(n): 3.0 for n in range(1, 9)},
            "one_by_one": {str(n): 4.0 for n in range(1, 9)},
            "runtime": "ai_edge_litert", "threads": 1, "photo": "data/x.jpg", "rounds": 3}},
        "multi_face_photos": {"photos": ["data/x.jpg"] * 30, "annotated_faces": 150,
                              "size": "640x426"},
        "default_backend": DEFAULT_BACKEND, "per_video_frames": 60,
    }


def test_both_frame_sets_are_set_against_the_baseline_in_the_targets():
    text = targets(results())
    assert ("detect + classify of a 1280x720 frame with one face, median 10.00 ms against the "
            "baseline's 175.00 ms: **17.5x** faster") in text
    assert ("detect + classify of a photo with 4 to 8 faces, median 30.00 ms against the "
            "baseline's 420.00 ms: **14.0x** faster") in text
    assert "against the baseline's 5.00 fps: **15.4x**, meets the 10x target" in text


def test_the_latency_table_gives_each_row_its_ratio_to_the_baseline_of_its_frames():
    table = latency_table(results()["latency"], results()["baseline"])
    hd, multi, every = table.splitlines()[2:]
    assert hd.endswith("| 17.5x |") and "| 1.00 (1.00) |" in hd
    assert multi.endswith("| 14.0x |") and "| 5.00 (4.50) |" in multi
    assert every.endswith("| - |") and "| 1.10 |" in every  # no baseline there; older rows
    assert latency_table(results()["latency"]).splitlines()[2].endswith("| - |")


def test_the_report_shows_the_classifier_batches_and_renders_without_them():
    text = render_markdown(results())
    assert "## The classifier: all faces of a frame in one invoke" in text
    assert "| ai_edge_litert / 1 thread | one invoke per frame | 3.00 |" in text
    assert "| ai_edge_litert / 1 thread | one invoke per face | 4.00 |" in text
    assert "| ai_edge_litert / 1 thread | batched / per face | 0.75 |" in text
    assert "`multi-face photos` = 30 photos" in text and "all 640x426" in text
    assert "- `multi-face photos`: OpenCV's res10 SSD" in text and "27 frames" in text
    older = {k: v for k, v in results().items() if k not in ("classifier_batch", "multi_face_photos")}
    assert "Not measured yet: `maskdet bench`." in render_markdown(older)
    assert classifier_batch_table({}) == "Not measured yet: `maskdet bench`."


def test_targets_without_the_baseline_or_the_latency_still_render():
    no_baseline = {k: v for k, v in results().items() if k != "baseline"}
    assert "faster" not in targets(no_baseline) and "10 ms target" in targets(no_baseline)
    no_latency = {k: v for k, v in results().items() if k != "latency"}
    assert targets(no_latency) == "- (no measurement of the default backend)"
