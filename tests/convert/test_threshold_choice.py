"""The threshold a model ships with comes from validation alone: by the per-kind targets where
the validation split knows each face's kind (its label folder), else by balanced accuracy."""
import json
import shutil

import numpy as np

from convert import evaluate, metrics
from convert.dataset import no_mask_truth
from convert.evaluation_sets import EvalSet, split_set
from convert.targets import TARGET_OF_KIND
from tests.conftest import shared_path


def test_the_validation_split_knows_each_faces_kind_from_its_folder(tmp_path):
    entries = []
    for kind, label in (("with_mask", 0), ("without_mask", 1), ("mask_weared_incorrect", 1)):
        folder = tmp_path / "faces" / kind
        folder.mkdir(parents=True)
        source = shared_path("data", "faces", "with_mask", "with_mask_0001.jpg")
        shutil.copyfile(source, folder / "a.jpg")
        entries.append([str(folder / "a.jpg"), label])
    (tmp_path / "other").mkdir()
    shutil.copyfile(shared_path("data", "faces", "with_mask", "with_mask_0002.jpg"),
                    tmp_path / "other" / "b.jpg")
    entries.append([str(tmp_path / "other" / "b.jpg"), 0])
    run = tmp_path / "run"
    run.mkdir()
    (run / "split.json").write_text(json.dumps({"train": [], "val": entries}))
    val = split_set(str(run), "val")
    assert val.kinds == ["with_mask", "without_mask", "mask_weared_incorrect", None]
    assert list(val.labels) == [0, 1, 1, 0]


def validation(kinds, scores):
    labels = no_mask_truth([metrics.FOLDER_LABELS[k] if k else 0 for k in kinds])
    return EvalSet("validation", [None] * len(kinds), labels, [str(i) for i in range(len(kinds))],
                   kinds), np.asarray(scores)


def test_a_validation_split_with_kinds_chooses_by_the_kind_targets():
    kinds = ["with_mask"] * 100 + ["without_mask"] * 100 + ["mask_weared_incorrect"] * 10
    val, scores = validation(kinds, np.r_[np.linspace(0.0, 0.2, 90), np.linspace(0.32, 0.48, 10),
                                          np.linspace(0.8, 1.0, 100), np.linspace(0.3, 0.5, 10)])
    report = evaluate.evaluate_scores([val], {"validation": scores})["validation"]
    assert report["threshold"] == metrics.choose_threshold_for_kinds(val.labels, scores, kinds,
                                                                     TARGET_OF_KIND)
    assert report["threshold"] != metrics.choose_threshold(val.labels, scores)


def test_a_face_of_unknown_kind_falls_back_to_balanced_accuracy():
    kinds = ["with_mask"] * 100 + ["without_mask"] * 100 + ["mask_weared_incorrect"] * 9 + [None]
    val, scores = validation(kinds, np.r_[np.linspace(0.0, 0.2, 90), np.linspace(0.32, 0.48, 10),
                                          np.linspace(0.8, 1.0, 100), np.linspace(0.3, 0.5, 10)])
    report = evaluate.evaluate_scores([val], {"validation": scores})["validation"]
    assert report["threshold"] == metrics.choose_threshold(val.labels, scores)
