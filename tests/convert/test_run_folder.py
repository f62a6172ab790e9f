"""The run folder's names and the metadata's schema and portable paths (no TensorFlow needed)."""
import copy
import json
import os

import pytest

from convert import run_folder
from edge.errors import ModelError
from edge.paths import shared_dir
from tests.conftest import REPO_ROOT

pytest.importorskip("jsonschema")


@pytest.fixture
def meta():
    with open(os.path.join(REPO_ROOT, "models", "mask_classifier.json"), encoding="utf-8") as handle:
        return json.load(handle)


def test_paths_in_metadata_are_relative_to_the_workspace():
    workspace = os.path.dirname(shared_dir())
    assert run_folder.portable_path(os.path.join(shared_dir(), "data", "faces")) == \
        os.path.join(os.path.basename(shared_dir()), "data", "faces")
    assert run_folder.portable_path(os.path.join(workspace, "runs", "scene_faces")) == \
        os.path.join("runs", "scene_faces")
    assert not os.path.isabs(run_folder.portable_path("/elsewhere/runs/scene_faces"))
    assert run_folder.portable_path("images/scene_0071.jpg#4") == "images/scene_0071.jpg#4"


def test_an_absolute_path_anywhere_is_refused(meta, tmp_path):
    bad = copy.deepcopy(meta)
    bad["metrics"]["int8_float_agreement"]["validation"]["disagreements"] = ["/home/me/x.jpg"]
    with pytest.raises(ModelError, match="disagreements.*absolute path"):
        run_folder.write_metadata(bad, str(tmp_path / "m.json"))
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("change, where", [
    (lambda m: m.pop("labels"), "labels"),
    (lambda m: m.update(threshold="0.5"), "threshold"),
    (lambda m: m["files"].update(int8="../x.tflite"), "files.int8"),
    (lambda m: m["data"].update(roots=["/abs/faces"]), "data.roots.0"),
])
def test_a_metadata_that_breaks_its_schema_is_refused_with_the_key(meta, change, where):
    bad = copy.deepcopy(meta)
    change(bad)
    with pytest.raises(ModelError) as info:
        run_folder.validate_metadata(bad, "m.json")
    assert where in str(info.value), info.value


def test_plot_and_report_names():
    assert run_folder.confusion_plot("int8", run_folder.REAL_WORLD) == "confusion_int8_real_world_scenes.png"
    assert run_folder.CARD_PLOTS[0] == run_folder.TRAINING_CURVES
    assert run_folder.int8_model("m") == "m_int8.tflite"
