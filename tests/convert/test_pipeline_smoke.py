"""CI's smoke run of the conversion: train, quantize, check-edgetpu, publish and evaluate, end to
end on a few images and steps (the full training is a documented command, see README.md)."""
import json

import pytest

from tests.conftest import annotated_faces, requires_tensorflow, run_cli, shared_path


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    requires_tensorflow()
    shared_path("data", "faces")
    work = tmp_path_factory.mktemp("smoke")
    out = work / "models"
    # with three outputs: the default two are the path every model before it took
    proc = run_cli("-m", "convert.cli", "pipeline", "--smoke", "--sizes", "96", "80",
                   "--teacher-size", "96", "--outputs", "3", "--work", str(work), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (work / "pipeline.log").write_text(proc.stderr)
    return work, out, json.loads(proc.stdout.strip().splitlines()[-1])


def test_pipeline_publishes_a_model_its_metadata_and_card(smoke):
    work, out, summary = smoke
    meta = json.loads((out / "mask_classifier.json").read_text())
    assert summary["chosen_size"] in (96, 80) and meta["input"]["size"] == summary["chosen_size"]
    assert {c["size"] for c in meta["selection"]["candidates"]} == {96, 80}
    assert meta["data"]["counts"]["train"]["mask"] > 0
    assert 0 < meta["threshold"] < 1
    by_kind = meta["metrics"]["int8_correct_by_kind"]["real-world scenes"]
    assert sum(total for _, total in by_kind.values()) == meta["metrics"]["int8"]["real-world scenes"]["n"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "Choice of input size" in card and "Known limits" in card
    assert "Real-world faces by their annotation" in card
    for plot in ("training_curves.png", "curves_int8.png", "confusion_int8_validation.png"):
        assert (out / "card" / plot).stat().st_size > 1000


def test_the_student_is_distilled_from_the_teacher_with_unlabelled_faces(smoke):
    work, _, _ = smoke
    teacher = json.loads((work / "r96" / "train.json").read_text())
    student = json.loads((work / "r80" / "train.json").read_text())
    assert "distillation" not in teacher  # the teacher learns from the labels alone
    distillation = student["distillation"]
    assert distillation["teachers"] == [distillation["teachers"][0]]
    assert distillation["teachers"][0].endswith("r96/mask_classifier_float.tflite")
    assert distillation["teacher_sizes"] == [96]
    split = [json.loads((work / run / "split.json").read_text()) for run in ("r96", "r80")]
    assert split[0] == split[1]  # the student validates on faces its teacher never trained on
    unlabelled = list((work / "unlabelled_faces" / "unlabelled").glob("video-*.png"))
    assert distillation["unlabelled_faces"] == min(len(unlabelled), 40) > 0  # smoke: 40 at most
    meta = json.loads((work / "r80" / "mask_classifier.json").read_text())
    assert meta["training"]["distillation"]["alpha"] == 0.5


def test_held_out_below_nose_photos_are_scored_never_trained(smoke):
    work, out, _ = smoke
    meta = json.loads((out / "mask_classifier.json").read_text())
    held_out = meta["metrics"]["int8"]["held-out scenes"]
    assert held_out["n"] > 0
    scene_faces = {p.name.split("__")[0] for p in (work / "scene_faces").rglob("*.png")}
    from convert.defaults import held_out_scene_photos

    photos = next(iter(held_out_scene_photos().values()))
    stems = {"ilc2021-" + name.rsplit(".", 1)[0].split("/")[-1] for name in photos}
    assert len(photos) > 50 and not (stems & scene_faces)


def test_published_model_runs_on_the_edge_classifier(smoke):
    import numpy as np

    from edge.inference.classifier import MaskClassifier, no_mask_score

    _, out, _ = smoke
    clf = MaskClassifier.open(out / "mask_classifier.json")
    result = clf.classify(np.full((120, 100, 3), 128, np.uint8))
    p = result.no_mask_probability
    # the label follows the metadata's threshold; the score is the label's, on the scale where
    # the threshold is 0.5
    assert result.label == ("no_mask" if p >= clf.meta.threshold else "mask")
    # the smoke run's own scale, fitted on its validation split by quantize
    with open(out / "mask_classifier.json", encoding="utf-8") as handle:
        assert json.load(handle)["score_scale"] == clf.meta.score_scale > 0
    q = no_mask_score(p, clf.meta.threshold, clf.meta.score_scale)
    assert result.score == pytest.approx(q if result.label == "no_mask" else 1 - q)
    assert result.score >= 0.5


def test_the_model_has_an_output_for_masks_below_the_nose_and_the_pi_adds_them_up(smoke):
    """A run trained with three outputs (mask, no_mask, mask_below_nose): its metadata says so,
    and the Pi's P(no mask) is the sum of the two kinds, the share of the second kept."""
    import numpy as np

    from edge.inference import tensors
    from edge.inference.classifier import MaskClassifier
    from edge.inference.preprocess import resize_square

    _, out, _ = smoke
    meta = json.loads((out / "mask_classifier.json").read_text())
    assert meta["labels"] == ["mask", "no_mask", "mask_below_nose"]
    assert meta["no_mask_labels"] == ["no_mask", "mask_below_nose"]
    clf = MaskClassifier.open(out / "mask_classifier.json")
    assert clf.meta.no_mask_indices == (1, 2)
    faces = [np.random.default_rng(i).integers(0, 256, (90, 80, 3), np.uint8) for i in range(4)]
    for face in faces:
        row = tensors.run_image(clf.interpreter, resize_square(face, clf.meta.input_size),
                                clf.meta.mean, clf.meta.std)
        answer = clf.classify(face)
        assert answer.no_mask_probability == pytest.approx(min(row[1] + row[2], 1.0))
        assert answer.below_nose == pytest.approx(row[2] / (row[1] + row[2]))


def test_check_edgetpu_passes_on_the_smoke_model(smoke):
    _, out, _ = smoke
    proc = run_cli("-m", "convert.cli", "check-edgetpu", "--json", str(out / "mask_classifier_int8.tflite"))
    assert proc.returncode == 0, proc.stdout
    assert json.loads(proc.stdout)["compatible"] is True


def test_evaluate_writes_reports_and_plots(smoke):
    work, _, _ = smoke
    run = work / "r96"
    proc = run_cli("-m", "convert.cli", "evaluate", "--run", str(run),
                   "--model", str(run / "mask_classifier_int8.tflite"), "--out", str(work / "eval"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((work / "eval" / "eval_mask_classifier_int8.json").read_text())
    assert set(report) == {"validation", "real-world scenes", "held-out scenes"}
    every_face = annotated_faces(shared_path("data", "scenes", "annotations.json"), 32)
    assert report["real-world scenes"]["n"] == sum(every_face.values())  # every face of >= 32 px
    assert (work / "eval" / "curves_mask_classifier_int8.png").exists()


def test_the_smallest_size_is_paired_with_the_next_as_its_second_opinion(smoke):
    """The pair is a candidate of its own; where the 96 px model changes no validation decision
    of the 80 px one there is no pair, and the log says why."""
    work, out, _ = smoke
    meta = json.loads((out / "mask_classifier.json").read_text())
    runs = {c["run"] for c in meta["selection"]["candidates"]}
    pair = work / "r80+96" / "mask_classifier.json"
    if pair.exists():
        made = json.loads(pair.read_text())
        assert made["second_opinion"]["input_size"] == 96
        assert any(run.endswith("r80+96") for run in runs)
    else:
        assert "changes no validation decision" in (work / "pipeline.log").read_text()
        assert not any(run.endswith("r80+96") for run in runs)
