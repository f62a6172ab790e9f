"""Distillation targets and the held-out split of the masks-below-the-nose photos."""
import json

import numpy as np
import pytest

from convert.distill import agreement_with_teacher, soft_targets, soften
from convert.scene_faces import held_out_photos


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
