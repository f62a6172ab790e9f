import logging
import os

import cv2
import numpy as np
import pytest

from convert import dataset
from edge.errors import DataError


def make_tree(root, counts, size=40):
    rng = np.random.default_rng(0)
    for folder, n in counts.items():
        os.makedirs(root / folder, exist_ok=True)
        for i in range(n):
            cv2.imwrite(str(root / folder / f"{folder}{i:03d}.png"),
                        rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def test_folders_map_to_labels_and_incorrect_masks_count_as_no_mask(tmp_path):
    make_tree(tmp_path, {"with_mask": 3, "without_mask": 2, "mask_weared_incorrect": 1})
    (tmp_path / "with_mask" / "notes.txt").write_text("not an image")
    samples = dataset.list_samples([str(tmp_path)])
    assert len(samples) == 6
    labels = [s.label for s in samples]
    assert dataset.class_counts(labels) == {"mask": 3, "no_mask": 2, "mask_below_nose": 1}
    # a mask below the nose has its own output but is decided no mask
    assert list(dataset.no_mask_truth(labels)) == [0, 0, 0, 1, 1, 1]


def test_root_without_label_folders_is_a_clear_error(tmp_path):
    (tmp_path / "cats").mkdir()
    with pytest.raises(DataError, match="with_mask"):
        dataset.list_samples([str(tmp_path)])
    with pytest.raises(DataError, match="does not exist"):
        dataset.list_samples([str(tmp_path / "missing")])


def test_split_is_stratified_deterministic_and_seeded(tmp_path):
    make_tree(tmp_path, {"with_mask": 50, "without_mask": 30})
    samples = dataset.list_samples([str(tmp_path)])
    train, val = dataset.split_samples(samples, 0.2, seed=1)
    assert dataset.class_counts([s.label for s in val]) == {"mask": 10, "no_mask": 6,
                                                           "mask_below_nose": 0}
    assert not {s.path for s in train} & {s.path for s in val}
    again = dataset.split_samples(samples, 0.2, seed=1)[1]
    other = dataset.split_samples(samples, 0.2, seed=2)[1]
    assert [s.path for s in again] == [s.path for s in val]
    assert [s.path for s in other] != [s.path for s in val]


def test_faces_of_one_photo_stay_on_one_side(tmp_path):
    os.makedirs(tmp_path / "with_mask")
    for photo in range(10):
        for face in range(3):
            cv2.imwrite(str(tmp_path / "with_mask" / f"photo{photo}__{face}.png"),
                        np.zeros((8, 8, 3), np.uint8))
    train, val = dataset.split_samples(dataset.list_samples([str(tmp_path)]), 0.3, seed=0)
    assert {s.group for s in train}.isdisjoint({s.group for s in val})
    assert len(val) == 9


def test_corrupt_images_are_reported_by_name_and_skipped(tmp_path, caplog):
    make_tree(tmp_path, {"with_mask": 2, "without_mask": 1})
    bad = tmp_path / "without_mask" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    samples = dataset.list_samples([str(tmp_path)])
    with caplog.at_level(logging.WARNING):
        images, labels, kept = dataset.load_images(samples, 32)
    assert images.shape == (3, 32, 32, 3) and len(kept) == 3
    assert "broken.jpg" in caplog.text


def test_fingerprint_changes_with_content(tmp_path):
    make_tree(tmp_path, {"with_mask": 2})
    samples = dataset.list_samples([str(tmp_path)])
    before = dataset.fingerprint(samples)
    cv2.imwrite(samples[0].path, np.full((40, 40, 3), 7, np.uint8))
    assert dataset.fingerprint(samples) != before


def test_incorrectly_worn_masks_get_more_augmented_views():
    from convert.train import FOLDER_VIEW_BOOST, view_plan

    samples = [dataset.Sample("a", 0, "a", "with_mask"),
               dataset.Sample("b", 1, "b", "mask_weared_incorrect"),
               dataset.Sample("c", 1, "c", "without_mask")]
    plan = view_plan(samples, 2).tolist()
    boost = FOLDER_VIEW_BOOST["mask_weared_incorrect"]
    assert boost > 1 and plan.count(0) == 2 and plan.count(2) == 2 and plan.count(1) == 2 * boost


@pytest.mark.parametrize("counts", [(100, 60, 20), (100, 60, 0), (30, 10, 90)])
def test_class_weights_are_a_two_class_models_whatever_the_kind_of_no_mask(counts):
    """All masks weigh as much as all faces without a mask; every face without a mask weighs
    the same, bare or a mask below the nose (a kind with no face takes nothing)."""
    import numpy as np

    from convert.train import class_weights

    labels = np.repeat(np.arange(3), counts)
    weights = class_weights(labels)
    total = {k: weights[k] * n for k, n in enumerate(counts)}
    assert sum(total.values()) == pytest.approx(len(labels))  # the mean weight is one
    assert total[0] == pytest.approx(total[1] + total[2])
    assert weights[1] == pytest.approx(weights[2]) or not counts[2]
    assert (weights[2] == 0) == (counts[2] == 0)


def test_faces_of_one_photo_stay_on_one_side_whatever_their_labels(tmp_path):
    """A scene photo's crops (`<photo>__<i>.png`) of a bare face and a mask below the nose:
    both in training or both in validation, never one in each."""
    import cv2
    import numpy as np

    for folder in ("with_mask", "without_mask", "mask_weared_incorrect"):
        (tmp_path / folder).mkdir()
    pixel = np.zeros((8, 8, 3), np.uint8)
    for photo in range(30):
        cv2.imwrite(str(tmp_path / "without_mask" / f"p{photo}__0.png"), pixel)
        cv2.imwrite(str(tmp_path / "mask_weared_incorrect" / f"p{photo}__1.png"), pixel)
        cv2.imwrite(str(tmp_path / "with_mask" / f"p{photo}__2.png"), pixel)
    samples = dataset.list_samples([str(tmp_path)])
    for seed in range(5):
        train, val = dataset.split_samples(samples, 0.2, seed)
        assert not {s.group for s in train} & {s.group for s in val}
        assert 3 <= len({s.group for s in val}) <= 9


def test_training_stops_on_the_mask_decision_not_on_the_kind_of_no_mask():
    """The metric early stopping watches: the cross-entropy of P(mask) alone, from label
    indices or class probabilities. Telling a bare face from a mask below the nose wrongly
    (which decides nothing) leaves it unchanged; calling a mask no mask raises it."""
    import numpy as np

    from tests.conftest import requires_tensorflow

    requires_tensorflow()
    from convert.train import decision_loss

    def value(soft, y_true, y_pred):
        return float(np.mean(np.asarray(decision_loss(soft)(np.asarray(y_true),
                                                             np.asarray(y_pred, np.float32)))))

    right = [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]
    kinds_swapped = [[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]]
    mask_missed = [[0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]
    labels = [0, 1, 2]
    one_hot = np.eye(3, dtype=np.float32)[labels]
    expected = -np.mean(np.log([0.9, 0.9, 0.9]))
    for soft, y in ((False, labels), (True, one_hot)):
        assert value(soft, y, right) == pytest.approx(expected, rel=1e-4)
        assert value(soft, y, kinds_swapped) == pytest.approx(value(soft, y, right), rel=1e-6)
        assert value(soft, y, mask_missed) > value(soft, y, right) + 0.3


def test_a_student_keeps_its_teachers_split_and_splits_only_new_faces(tmp_path):
    """The faces a teacher's split lists stay on its side (a student then validates on faces
    no teacher trained on); faces it does not list are split as usual."""
    make_tree(tmp_path, {"with_mask": 20, "without_mask": 10})
    samples = dataset.list_samples([str(tmp_path)])
    old, new = samples[:15] + samples[20:25], samples[15:20] + samples[25:]
    teacher_train, teacher_val = dataset.split_samples(old, 0.5, seed=3)
    split = {"train": [[s.path, s.label] for s in teacher_train],
             "val": [[s.path, s.label] for s in teacher_val]}
    train, val = dataset.split_like(samples, split, 0.2, seed=0)
    assert {s.path for s in teacher_val} <= {s.path for s in val}
    assert {s.path for s in teacher_train} <= {s.path for s in train}
    assert len(train) + len(val) == len(samples)
    new_val = {s.path for s in val} & {s.path for s in new}
    assert new_val == {s.path for s in dataset.split_samples(new, 0.2, seed=0)[1]} and new_val
    assert dataset.split_like(samples, {"train": [], "val": []}, 0.2, 0)[1] == \
        dataset.split_samples(samples, 0.2, 0)[1]


def test_a_new_face_joins_the_side_of_its_photos_known_faces(tmp_path):
    """A face the teachers' split does not list, from a photo whose other face it lists (a
    detector-framed crop added later), goes where that photo went: never train and val both."""
    os.makedirs(tmp_path / "with_mask")
    for photo in range(6):
        for face in ("0", "0d"):
            cv2.imwrite(str(tmp_path / "with_mask" / f"p{photo}__{face}.png"),
                        np.zeros((8, 8, 3), np.uint8))
    samples = dataset.list_samples([str(tmp_path)])
    known = [s for s in samples if s.path.endswith("__0.png")]
    split = {"train": [[s.path, 0] for s in known[:3]], "val": [[s.path, 0] for s in known[3:]]}
    train, val = dataset.split_like(samples, split, 0.5, seed=0)
    assert {s.group for s in train}.isdisjoint({s.group for s in val})
    assert len(train) == len(val) == 6
