"""The shipped classifier on faces no training step saw, kind by kind: floors that fail if a new
model regresses (issue 12). Scored here from the shared data, not read from the metadata."""
import json
import os

import pytest

from tests.conftest import REPO_ROOT, run_cli, shared_path

META = os.path.join(REPO_ROOT, "models", "mask_classifier.json")

# Runs in a fresh interpreter: the shipped model through the Pi's own code, without TensorFlow.
SCORE_BY_KIND = r"""
import json, sys
import numpy as np
from convert import defaults
from convert.evaluation_sets import held_out_scenes_set, real_world_set
from edge.inference.classifier import MaskClassifier
clf = MaskClassifier.open(sys.argv[1])
out = {"tensorflow_imported": "tensorflow" in sys.modules}
for s in (real_world_set(defaults.real_world_annotations()),
          held_out_scenes_set(defaults.held_out_scene_photos())):
    right = {}
    for image, label, kind in zip(s.images, s.labels, s.kinds):
        called = clf.classify(image).label
        ok = (called == "no_mask") == bool(label)
        r, n = right.get(kind, (0, 0))
        right[kind] = (r + int(ok), n + 1)
    out[s.name] = right
print(json.dumps(out))
"""

# (set, annotation kind) -> the least share called right: the targets of issue 12, which the
# shipped pair (a 128 px model with a 160 px second opinion) meets: held-out masks below the
# nose 104 of 113, bare faces 44 of 44, masks worn correctly 302 of 306 (MODEL_CARD.md).
FLOORS = {
    ("held-out scenes", "mask_weared_incorrect"): 0.90,
    ("real-world scenes", "without_mask"): 0.97,
    ("real-world scenes", "with_mask"): 0.98,
}


@pytest.fixture(scope="module")
def by_kind():
    shared_path("data", "scenes", "annotations.json")
    shared_path("data", "scenes_more", "ilc2021", "annotations.json")
    proc = run_cli("-c", SCORE_BY_KIND, META)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("set_name,kind", sorted(FLOORS))
def test_each_kind_stays_above_its_floor(by_kind, set_name, kind):
    right, total = by_kind[set_name][kind]
    assert total >= 20, f"too few {kind} faces in {set_name} to hold a floor"
    assert right / total >= FLOORS[set_name, kind], (set_name, kind, right, total)


def test_the_card_reports_what_the_model_does(by_kind):
    """The metadata's per-kind counts are the ones measured here (the card is made from them)."""
    with open(META, encoding="utf-8") as handle:
        recorded = json.load(handle)["metrics"]["int8_correct_by_kind"]
    assert by_kind["tensorflow_imported"] is False
    for set_name, kind in FLOORS:
        assert tuple(recorded[set_name][kind]) == tuple(by_kind[set_name][kind]), (set_name, kind)
