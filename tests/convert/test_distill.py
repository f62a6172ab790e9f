"""Distillation targets and the held-out split of the masks-below-the-nose photos."""
import json
import os

import numpy as np
import pytest

from convert.distill import agreement_with_teacher, soft_targets, soften
from convert.scene_faces import held_out_photos
from edge.paths import REPO_ROOT


def test_soft_targets_mix_the_label_with_the_softened_teacher_score():
    targets = soft_targets([0, 1, -1, 2], [0.9, 0.9, 0.2, 0.7], alpha=0.5, temperature=1.0)
    assert np.allclose(targets.sum(axis=1), 1.0)
    # label mask, the teacher doubts: its P(no mask) goes to a bare face
    assert targets[0] == pytest.approx([0.5 + 0.5 * 0.1, 0.5 * 0.9, 0.0])
    assert targets[1] == pytest.approx([0.5 * 0.1, 0.5 + 0.5 * 0.9, 0.0])
    assert targets[2] == pytest.approx([0.8, 0.2, 0.0])  # no label: the teacher alone
    # a mask below the nose: the teacher's P(no mask) goes to the kind the label names
    assert targets[3] == pytest.approx([0.5 * 0.3, 0.0, 0.5 + 0.5 * 0.7])


def test_a_temperature_above_one_softens_without_changing_the_side():
    plain, softened = soften([0.95, 0.05], 1.0), soften([0.95, 0.05], 2.0)
    assert plain[0, 1] == pytest.approx(0.95)
    assert 0.5 < softened[0, 1] < 0.95 and 0.05 < softened[1, 1] < 0.5


def test_agreement_with_the_teacher():
    out = agreement_with_teacher([0.9, 0.2, 0.6], [0.8, 0.1, 0.4])
    assert out["same_label"] == pytest.approx(2 / 3)
    assert out["mean_score_difference"] == pytest.approx((0.1 + 0.1 + 0.2) / 3)


def _annotations(tmp_path, n):
    entries = [{"image": f"p{i:03d}.jpg",
                "faces": [{"box": [0, 0, 40, 40],
                           "label": "mask_weared_incorrect" if i % 2 else "with_mask"}]}
               for i in range(n)]
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(entries))
    return str(path)


def test_held_out_photos_are_a_seeded_share_of_those_showing_the_kind(tmp_path):
    path = _annotations(tmp_path, 40)
    chosen = held_out_photos(path, "mask_weared_incorrect", 0.3)
    assert len(chosen) == 6  # 30 % of the 20 photos with a mask below the nose
    assert all(int(name[1:4]) % 2 for name in chosen)
    assert chosen == held_out_photos(path, "mask_weared_incorrect", 0.3)  # the same every run
    assert chosen != held_out_photos(path, "mask_weared_incorrect", 0.3, seed=1)


def test_with_two_outputs_a_mask_below_the_nose_is_no_mask():
    """The default model (two outputs): a mask below the nose is trained as no_mask, its
    teacher's P(no mask) on the no_mask output."""
    from convert import dataset

    labels = dataset.as_outputs([0, 1, 2, -1], 2)
    assert list(labels) == [0, 1, 1, -1]
    assert list(dataset.as_outputs([0, 1, 2, -1], 3)) == [0, 1, 2, -1]
    targets = soft_targets(labels, [0.1, 0.9, 0.7, 0.4], alpha=0.5, temperature=1.0, outputs=2)
    assert targets.shape == (4, 2) and np.allclose(targets.sum(axis=1), 1.0)
    assert targets[2] == pytest.approx([0.5 * 0.3, 0.5 + 0.5 * 0.7])


def test_several_teachers_give_their_mean_score():
    """An ensemble of teachers: each face's target comes from the mean of their P(no mask),
    each scored as the Pi scores (two real classifiers on real faces)."""
    from convert.dataset import read_rgb
    from convert.distill import teacher_probabilities
    from tests.conftest import shared_path

    ours = os.path.join(REPO_ROOT, "models", "mask_classifier_int8.tflite")
    coral = shared_path("models", "coral_pair", "mask_detector_quant_v2.tflite")
    faces = [read_rgb(os.path.join(folder, name)) for folder in
             (shared_path("data", "faces", "with_mask"), shared_path("data", "faces", "without_mask"))
             for name in sorted(os.listdir(folder))[:4]]
    each = [teacher_probabilities([path], faces) for path in (ours, coral)]
    both = teacher_probabilities([ours, coral], faces)
    assert not np.allclose(each[0], each[1])
    assert both == pytest.approx((each[0] + each[1]) / 2)


def _run_with_split(tmp_path, name, val):
    run = tmp_path / name
    run.mkdir()
    (run / "split.json").write_text(json.dumps({"train": [["a.png", 0]], "val": val}))
    return str(run / "mask_classifier_float.tflite")


def test_teachers_split_differently_are_refused_by_name(tmp_path):
    from convert.distill import teachers_split
    from edge.errors import DataError

    first = _run_with_split(tmp_path, "first", [["b.png", 1]])
    same = _run_with_split(tmp_path, "same", [["b.png", 1]])
    other = _run_with_split(tmp_path, "other", [["c.png", 1]])
    assert teachers_split([first, same])["val"] == [["b.png", 1]]
    with pytest.raises(DataError, match="first.*other.*split differently"):
        teachers_split([first, other])


def test_a_runs_teachers_are_read_from_old_and_ensemble_summaries():
    from convert.distill import teachers_of

    assert teachers_of({"teacher": "r224/m.tflite", "teacher_size": 224}) == [("r224/m.tflite", 224)]
    assert teachers_of({"teachers": ["a.tflite", "b.tflite"], "teacher_sizes": [224, 160]}) == \
        [("a.tflite", 224), ("b.tflite", 160)]
