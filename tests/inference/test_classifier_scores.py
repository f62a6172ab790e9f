"""The classifier's scores are on one scale whatever the model: its P(no mask) re-centred so that
the threshold chosen on validation is 0.5. Labels, scores and the decision band then agree: a
person is never decided against the label every one of their frames carries."""
import cv2
import numpy as np
import pytest

from edge.inference.accelerator import AcceleratorSettings
from edge.inference.classifier import MaskClassifier, no_mask_score
from edge.paths import default_classifier
from edge.service.decision import DecisionSettings, TrackDecision, update_decision
from tests.conftest import shared_path
from tests.inference.test_classifier_batch import FOUR_FACES_BOXES

CPU_1 = AcceleratorSettings(mode="cpu", threads=1)


@pytest.fixture(scope="module")
def classifier():
    return MaskClassifier.open(default_classifier(), CPU_1)


@pytest.mark.parametrize("threshold", [0.05, 0.2421875, 0.5, 0.6, 0.95])
def test_the_threshold_is_one_half_and_the_order_of_faces_is_kept(threshold):
    assert no_mask_score(threshold, threshold) == pytest.approx(0.5, abs=1e-12)
    probabilities = np.linspace(0.0, 1.0, 257)
    scores = [no_mask_score(p, threshold) for p in probabilities]
    assert all(a < b for a, b in zip(scores, scores[1:]))
    assert scores[0] < 1e-4 and scores[-1] > 1 - 1e-4
    assert all((s >= 0.5) == (p >= threshold) for p, s in zip(probabilities, scores))


def test_the_shipped_model_is_one_whose_threshold_is_not_one_half(classifier):
    """What makes the re-centring matter: otherwise these tests would pass without it."""
    assert abs(classifier.meta.threshold - 0.5) > 0.1


def test_real_faces_labels_and_scores_agree(classifier):
    """On real faces (four_faces.jpg, whole and shifted boxes with scores between the labels):
    the label's score is at least 0.5, and the no-mask score is on the label's side of 0.5."""
    frame = cv2.imread(shared_path("data", "images", "four_faces.jpg"))
    answers = classifier.classify_boxes(frame, FOUR_FACES_BOXES)
    assert {a.label for a in answers} == {"mask", "no_mask"}
    for answer in answers:
        assert answer.score >= 0.5, answer
        assert (answer.no_mask_score >= 0.5) == (answer.label == "no_mask"), answer
        expected = answer.no_mask_score if answer.label == "no_mask" else 1 - answer.no_mask_score
        assert answer.score == pytest.approx(expected)
    by_probability = sorted(answers, key=lambda a: a.no_mask_probability)
    assert [a.no_mask_score for a in by_probability] == sorted(a.no_mask_score for a in answers)


def test_a_real_face_between_the_threshold_and_one_half_gets_its_labels_score(classifier):
    """The case the re-centring is for: a real face (a box sliding down the mask of the fourth
    face of four_faces.jpg) whose P(no mask) lies between the model's threshold and 0.5. On the
    model's raw scale its label would carry a score on the wrong side of 0.5."""
    frame = cv2.imread(shared_path("data", "images", "four_faces.jpg"))
    boxes = [(440, y, 490, y + 62) for y in range(160, 184, 2)]
    low, high = sorted((classifier.meta.threshold, 0.5))
    between = [a for a in classifier.classify_boxes(frame, boxes)
               if low <= a.no_mask_probability < high]
    assert between, "no face scores between the threshold and 0.5: the test would prove nothing"
    for answer in between:
        assert answer.score >= 0.5, answer
        assert (answer.no_mask_score >= 0.5) == (answer.label == "no_mask"), answer


def test_a_person_is_never_decided_against_the_label_of_all_their_frames(classifier):
    """Every P(no mask) the model can give (its output is int8: 256 steps), a person whose frames
    all score so: decided as the label says, or not decided, never the other way."""
    settings = DecisionSettings()
    decided = {"mask": 0, "no_mask": 0}
    for step in range(256):
        answer = classifier.decide(step / 255)
        state = TrackDecision()
        verdicts = [update_decision(state, answer.no_mask_score, settings)
                    for _ in range(settings.min_frames + 5)]
        verdict = next((v for v in verdicts if v), None)
        assert verdict in (None, answer.label), (step / 255, answer)
        if verdict:
            decided[verdict] += 1
    assert decided["mask"] > 0 and decided["no_mask"] > 0


def test_the_band_is_centred_on_the_model_threshold(classifier):
    """Just above the threshold is as far from `no_mask` as just below it is from `mask`."""
    t = classifier.meta.threshold
    above = classifier.decide(min(t * 1.5, 1.0)).no_mask_score
    below = classifier.decide(t / 1.5).no_mask_score
    assert above - 0.5 == pytest.approx(0.5 - below, abs=0.06)


@pytest.mark.parametrize("scale", [0.5, 1.6, 3.0])
def test_the_score_scale_sharpens_or_softens_and_keeps_the_threshold_and_the_order(scale):
    threshold = 0.28125
    assert no_mask_score(threshold, threshold, scale) == pytest.approx(0.5, abs=1e-12)
    probabilities = np.linspace(0.0, 1.0, 257)
    scaled = [no_mask_score(p, threshold, scale) for p in probabilities]
    plain = [no_mask_score(p, threshold) for p in probabilities]
    assert all(a < b for a, b in zip(scaled, scaled[1:]))
    for s, q in zip(scaled, plain):
        assert (s >= 0.5) == (q >= 0.5)  # the same labels
        if abs(q - 0.5) > 1e-9:  # further from 0.5 when the scale is above 1, nearer below
            assert (abs(s - 0.5) > abs(q - 0.5)) == (scale > 1), (s, q)


def shipped_meta_with(folder, **changes):
    import json
    import os
    import shutil

    with open(default_classifier(), encoding="utf-8") as handle:
        meta = json.load(handle)
    meta.pop("score_scale", None)
    meta.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    for file in meta["files"].values():  # the model, and a second opinion's
        shutil.copyfile(os.path.join(os.path.dirname(default_classifier()), file), folder / file)
    path = folder / "mask_classifier.json"
    path.write_text(json.dumps(meta))
    return str(path)


def test_the_classifier_applies_its_metadatas_score_scale(tmp_path):
    """A model's score_scale (fitted on its validation set by the conversion) is what its scores
    are scaled by; a model without one (made before it) keeps its plain re-centred score."""
    threshold = MaskClassifier.open(default_classifier(), CPU_1).meta.threshold
    for scale, path in ((2.0, shipped_meta_with(tmp_path / "a", score_scale=2.0)),
                        (1.0, shipped_meta_with(tmp_path / "b"))):
        clf = MaskClassifier.open(path, CPU_1)
        assert clf.meta.score_scale == scale
        for p in (0.1, threshold, 0.4, 0.9):
            assert clf.decide(p).no_mask_score == pytest.approx(no_mask_score(p, threshold, scale))


@pytest.mark.parametrize("bad", [-1.0, 0, "2", 100.0])
def test_a_bad_score_scale_is_named(tmp_path, bad):
    from edge.errors import ModelError

    with pytest.raises(ModelError, match="score_scale"):
        MaskClassifier.open(shipped_meta_with(tmp_path, score_scale=bad), CPU_1)


def test_a_two_class_model_reads_its_no_mask_output_alone(classifier):
    """A model made before masks below the nose had their own output (the shipped one, whose
    metadata has no `no_mask_labels`): P(no mask) is its `no_mask` score, no kind is said."""
    from edge.inference import tensors

    from dataclasses import replace

    classifier = MaskClassifier(replace(classifier.meta, second_opinion=None),
                                classifier.interpreter)  # the first model of the shipped pair
    assert classifier.meta.labels == ("mask", "no_mask")
    assert classifier.meta.no_mask_indices == (1,)
    frame = cv2.imread(shared_path("data", "images", "four_faces.jpg"))
    for box in FOUR_FACES_BOXES:
        pixels = classifier._face_input(frame, box)
        row = tensors.run_image(classifier.interpreter, pixels, classifier.meta.mean,
                                classifier.meta.std)
        answer = classifier.classify_box(frame, box)
        assert answer.no_mask_probability == pytest.approx(float(row[1]))
        assert answer.below_nose is None


@pytest.mark.parametrize("bad", [["mask", "no_mask"], ["x"], [], "no_mask", ["no_mask", "no_mask"]])
def test_bad_no_mask_labels_are_named(tmp_path, bad):
    """The labels that add up to P(no mask) must be the model's, include the positive label and
    leave a label for masks."""
    from edge.errors import ModelError

    with pytest.raises(ModelError, match="no_mask_labels"):
        MaskClassifier.open(shipped_meta_with(tmp_path, no_mask_labels=bad), CPU_1)
