"""`maskdet-convert cascade`: a run with a second opinion, its band and threshold chosen on the
validation set, decides each face as the Pi's classifier then does; publish ships both models."""
import json
import os
import shutil

import numpy as np
import pytest

from convert import cascade, run_folder
from edge.errors import DataError
from edge.paths import models_dir

SPLIT = {"train": [["a/with_mask/x.png", 0]], "val": [["a/without_mask/y.png", 1]]}


def _shipped():
    with open(os.path.join(models_dir(), "mask_classifier.json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    if "second_opinion" not in meta:
        pytest.skip("the shipped classifier has no second opinion")
    return meta


def _single_run(folder, meta, model_file, size, split=SPLIT):
    """A quantized run of one of the shipped pair's models."""
    from edge.inference.model_meta import sha256_of

    folder.mkdir(parents=True)
    one = json.loads(json.dumps(meta))
    for key in ("second_opinion",):
        one.pop(key)
    one["metrics"].pop("first_model_alone")
    one["files"] = {"int8": "mask_classifier_int8.tflite"}
    shutil.copyfile(os.path.join(models_dir(), model_file), folder / one["files"]["int8"])
    one["sha256"] = {one["files"]["int8"]: sha256_of(str(folder / one["files"]["int8"]))}
    one["input"]["size"] = size
    one["input"]["shape"] = [1, size, size, 3]
    one["quality_gate"] = {"passed": True}
    (folder / "mask_classifier.json").write_text(json.dumps(one))
    (folder / "split.json").write_text(json.dumps(split))
    return str(folder)


@pytest.fixture(scope="module")
def sets():
    """The held-out photos as the validation set (hard faces: the mean of the pair changes some
    decisions there), and the real-world faces."""
    from convert import defaults
    from convert.evaluation_sets import held_out_scenes_set, real_world_set

    validation = held_out_scenes_set(defaults.held_out_scene_photos())
    validation.name = run_folder.VALIDATION
    return [validation, real_world_set(defaults.real_world_annotations())]


@pytest.fixture(scope="module")
def pair(tmp_path_factory, sets):
    meta = _shipped()
    root = tmp_path_factory.mktemp("pair")
    first = _single_run(root / "first", meta, meta["files"]["int8"], meta["input"]["size"])
    second = _single_run(root / "second", meta, meta["files"]["second_opinion"],
                         meta["second_opinion"]["input_size"])
    made = cascade.make_cascade(first, second, str(root / "pair"), sets)
    return first, second, str(root / "pair"), made


def test_the_pair_decides_each_face_as_the_pis_classifier_does(pair, sets):
    from edge.inference.accelerator import AcceleratorSettings
    from edge.inference.classifier import MaskClassifier

    _, _, out, made = pair
    clf = MaskClassifier.open(os.path.join(out, "mask_classifier.json"),
                              AcceleratorSettings(mode="cpu", threads=1))
    assert clf.second is not None
    for s in sets:
        counted = {}
        for image, truth, kind in zip(s.images, s.labels, s.kinds):
            right = (clf.classify(image).label == "no_mask") == bool(truth)
            r, n = counted.get(kind, (0, 0))
            counted[kind] = (r + right, n + 1)
        recorded = made["metrics"]["int8_correct_by_kind"][s.name]
        assert {k: tuple(v) for k, v in recorded.items()} == counted, s.name


def test_the_band_holds_every_validation_face_whose_decision_the_mean_changes(pair, sets):
    from convert.scorers import tflite_scorer

    first, second, _, made = pair
    opinion = made["second_opinion"]
    validation = sets[0]
    a = tflite_scorer(os.path.join(first, "mask_classifier_int8.tflite"))(validation.images)
    b = tflite_scorer(os.path.join(second, "mask_classifier_int8.tflite"))(validation.images)
    changed = ((a + b) / 2 >= opinion["threshold"]) != (a >= made["threshold"])
    assert changed.any()
    low, high = opinion["band"]
    assert np.all((a[changed] > low) & (a[changed] < high))  # inside, with the margin
    assert opinion["asked"][validation.name] == pytest.approx(np.mean((a >= low) & (a <= high)))
    assert 0 < opinion["asked"]["real-world scenes"] < 0.5


def test_publish_ships_both_models_and_a_later_single_model_removes_the_second(pair, tmp_path):
    from convert.publish import publish

    first, _, out, made = pair
    dest = tmp_path / "models"
    shipped = publish([out], str(dest))
    second_file = made["files"]["second_opinion"]
    assert (dest / second_file).read_bytes() == open(os.path.join(out, second_file), "rb").read()
    card = (dest / "MODEL_CARD.md").read_text()
    assert "Second opinion" in card and "second opinion" in shipped["selection"]["reason"]
    assert shipped["latency_cpu_int8"]["second_opinion_share"] == \
        made["second_opinion"]["asked"]["real-world scenes"]
    # Edge TPU builds an installer copied in beside them
    (dest / "mask_classifier_int8_edgetpu.tflite").write_bytes(b"the first, compiled")
    (dest / second_file.replace(".tflite", "_edgetpu.tflite")).write_bytes(b"the second")
    publish([first], str(dest))
    assert not (dest / second_file).exists()
    assert not (dest / second_file.replace(".tflite", "_edgetpu.tflite")).exists()
    assert (dest / "mask_classifier_int8_edgetpu.tflite").exists()  # the same first model
    assert "second_opinion" not in json.loads((dest / "mask_classifier.json").read_text())


def test_runs_split_or_labelled_differently_are_refused(tmp_path):
    meta = _shipped()
    first = _single_run(tmp_path / "a", meta, meta["files"]["int8"], 128)
    other_split = dict(SPLIT, val=[["a/without_mask/z.png", 1]])
    second = _single_run(tmp_path / "b", meta, meta["files"]["second_opinion"], 160, other_split)
    with open(os.path.join(first, "mask_classifier.json")) as f1, \
            open(os.path.join(second, "mask_classifier.json")) as f2:
        a, b = json.load(f1), json.load(f2)
    with pytest.raises(DataError, match="split differently"):
        cascade.check_pair(first, second, a, b)
    b["labels"] = ["mask", "no_mask", "mask_below_nose"]
    with pytest.raises(DataError, match="differ in labels"):
        cascade.check_pair(first, second, a, b)


def test_a_pair_is_not_a_member_of_another(pair):
    first, second, out, made = pair
    with open(os.path.join(first, "mask_classifier.json")) as handle:
        single = json.load(handle)
    shutil.copyfile(os.path.join(first, "split.json"), os.path.join(out, "split.json"))
    with pytest.raises(DataError, match="already a pair"):
        cascade.check_pair(out, first, made, single)


def test_a_second_model_that_changes_nothing_is_refused():
    first = np.array([0.1, 0.2, 0.8])
    with pytest.raises(DataError, match="would add nothing"):
        cascade.choose_band(first, first, 0.5, 0.5)
    low, high = cascade.choose_band(first, np.array([0.1, 0.6, 0.8]), 0.5, 0.5, margin=0.0)
    assert (low, high) == pytest.approx((0.2, 0.2))
    low, high = cascade.choose_band(first, np.array([0.1, 0.6, 0.8]), 0.5, 0.5)
    assert low < 0.2 < high < 0.5
