"""A classifier with a second opinion (the shipped pair): the faces whose P(no mask) from the
first model lies in the metadata's band are decided by the mean of both models on the second
opinion's threshold; every other face by the first model alone, as before."""
import json
import os
import shutil
from dataclasses import replace

import cv2
import numpy as np
import pytest

from edge.errors import ModelError
from edge.inference import tensors
from edge.inference.accelerator import AcceleratorSettings
from edge.inference.classifier import MaskClassifier, as_rgb, no_mask_score
from edge.inference.preprocess import resize_square
from edge.paths import default_classifier
from tests.conftest import damage_last_byte, shared_path
from tests.inference.test_classifier_batch import FOUR_FACES_BOXES

CPU_1 = AcceleratorSettings(mode="cpu", threads=1)


@pytest.fixture(scope="module")
def pair():
    clf = MaskClassifier.open(default_classifier(), CPU_1)
    if clf.meta.second_opinion is None:
        pytest.skip("the shipped classifier has no second opinion")
    return clf


def _both(clf, face_rgb):
    """(P(no mask) of the first model, of the second) for a face crop, each run directly."""
    first = tensors.run_image(clf.interpreter, resize_square(face_rgb, clf.meta.input_size),
                              clf.meta.mean, clf.meta.std)
    second = tensors.run_image(clf.second,
                               resize_square(face_rgb, clf.meta.second_opinion.input_size),
                               clf.meta.mean, clf.meta.std)
    return clf.read_scores(first)[0], clf.read_scores(second)[0]


def _real_faces(count=120):
    faces = []
    for kind in ("with_mask", "without_mask"):
        folder = shared_path("data", "faces", kind)
        faces += [as_rgb(cv2.imread(os.path.join(folder, name)))
                  for name in sorted(os.listdir(folder))[:count // 2]]
    folder = shared_path("data", "faces_wild", "rmfd")
    for kind in sorted(os.listdir(folder)):
        names = sorted(os.listdir(os.path.join(folder, kind)))[:count // 2]
        faces += [as_rgb(cv2.imread(os.path.join(folder, kind, name))) for name in names]
    return [f for f in faces if f is not None]


def test_faces_in_the_band_are_decided_by_both_models_and_the_rest_by_the_first(pair):
    opinion = pair.meta.second_opinion
    asked = alone = 0
    for face in _real_faces():
        first, second = _both(pair, face)
        got = pair.classify(face)
        if opinion.asks(first):
            asked += 1
            mean = (first + second) / 2
            assert got.no_mask_probability == pytest.approx(mean)
            assert got.label == ("no_mask" if mean >= opinion.threshold else "mask")
            assert got.no_mask_score == pytest.approx(
                no_mask_score(mean, opinion.threshold, opinion.score_scale))
        else:
            alone += 1
            assert got == pair.decide(first)
    assert asked and alone > asked  # both ways taken; the second model on the fewer faces


def test_the_second_model_runs_only_for_the_faces_it_is_asked_about(pair):
    """Counted at the second model's interpreter, on real faces through classify_boxes."""
    calls = []
    real_invoke = pair.second.invoke
    pair.second.invoke = lambda: (calls.append(1), real_invoke())[1]
    try:
        frame = cv2.imread(shared_path("data", "images", "four_faces.jpg"))
        answers = pair.classify_boxes(frame, FOUR_FACES_BOXES)
    finally:
        del pair.second.invoke
    firsts = [pair.read_scores(tensors.run_image(pair.interpreter, pair._face_input(frame, box),
                                                 pair.meta.mean, pair.meta.std))[0]
              for box in FOUR_FACES_BOXES]
    assert len(calls) == sum(pair.meta.second_opinion.asks(p) for p in firsts)
    assert answers == [pair.classify_box(frame, box) for box in FOUR_FACES_BOXES]


def test_without_its_second_opinion_the_first_model_decides_alone(pair):
    alone = MaskClassifier(replace(pair.meta, second_opinion=None), pair.interpreter)
    for face in _real_faces(40):
        first, _ = _both(pair, face)
        assert alone.classify(face) == pair.decide(first)


def _copy_models(tmp_path, **changes):
    with open(default_classifier(), encoding="utf-8") as handle:
        meta = json.load(handle)
    if "second_opinion" not in meta:
        pytest.skip("the shipped classifier has no second opinion")
    for file in meta["files"].values():
        shutil.copyfile(os.path.join(os.path.dirname(default_classifier()), file), tmp_path / file)
    for key, value in changes.items():
        meta["second_opinion"][key] = value
    path = tmp_path / "mask_classifier.json"
    path.write_text(json.dumps(meta))
    return str(path), meta


def test_a_damaged_second_model_is_named_by_its_checksum(tmp_path):
    path, meta = _copy_models(tmp_path)
    second = tmp_path / meta["files"]["second_opinion"]
    damage_last_byte(second)
    with pytest.raises(ModelError, match=f"{second.name} does not match the sha256"):
        MaskClassifier.open(path, CPU_1)
    second.unlink()
    with pytest.raises(ModelError, match=f"{second.name} does not exist"):
        MaskClassifier.open(path, CPU_1)


@pytest.mark.parametrize("key,value,named", [
    ("band", [0.6, 0.2], "second_opinion.band"),
    ("band", [0.1], "second_opinion.band"),
    ("band", ["low", 0.5], "second_opinion.band"),
    ("threshold", 1.5, "second_opinion.threshold"),
    ("input_size", 1.5, "second_opinion.input_size"),
])
def test_a_bad_second_opinion_is_named_by_its_key(tmp_path, key, value, named):
    path, _ = _copy_models(tmp_path, **{key: value})
    with pytest.raises(ModelError, match=named):
        MaskClassifier.open(path, CPU_1)


@pytest.mark.parametrize("change,named", [
    (lambda m: m["files"].pop("second_opinion"), "missing key 'files.second_opinion'"),
    (lambda m: m["sha256"].pop(m["files"]["second_opinion"]), "missing key 'sha256.mask_classifier_second"),
    (lambda m: m["files"].update(second_opinion=m["files"]["int8"]), "names the first model itself"),
])
def test_a_second_opinion_without_its_own_file_and_checksum_is_named(tmp_path, change, named):
    path, meta = _copy_models(tmp_path)
    change(meta)
    (tmp_path / "mask_classifier.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=named):
        MaskClassifier.open(path, CPU_1)


def test_the_second_model_runs_on_the_cpu_whatever_the_mode(tmp_path):
    """Compiled apart from the first, it would evict the first's parameters from the Edge TPU
    on every face asked: an `_edgetpu` build beside it is not used, and the Edge TPU being
    required concerns the first model alone."""
    path, meta = _copy_models(tmp_path)
    second = tmp_path / meta["files"]["second_opinion"]
    shutil.copyfile(second, tmp_path / second.name.replace(".tflite", "_edgetpu.tflite"))
    clf = MaskClassifier.open(path, AcceleratorSettings(mode="auto", threads=1))
    assert clf.second.placement.accelerator == "cpu" and clf.second.placement.reason is None
    assert clf.second.counters()["worker_pid"] is None  # no Edge TPU worker was started for it


def test_a_second_model_of_another_size_than_its_metadata_says_is_refused(tmp_path):
    path, _ = _copy_models(tmp_path, input_size=97)
    with pytest.raises(ModelError, match="says 97: the two files do not belong together"):
        MaskClassifier.open(path, CPU_1)


def test_scores_of_the_pair_keep_the_labels_side(pair):
    """The re-centred score of a face decided by both is on its label's side of 0.5, so the
    decision band and events read the pair as they read one model."""
    for face in _real_faces(60):
        got = pair.classify(face)
        assert got.score >= 0.5
        assert (got.no_mask_score >= 0.5) == (got.label == "no_mask")
    assert np.isfinite(got.no_mask_probability)
