"""The ImageNet backbone: pinned fetch, checksum refusal, copy by layer name."""
import os

import numpy as np
import pytest

from convert import weights
from edge.errors import ModelError
from edge.inference.fetch import cached_path
from tests.conftest import requires_tensorflow


@pytest.fixture(scope="module")
def weights_file():
    path = cached_path(weights.WEIGHTS_KEY)
    if not os.path.isfile(path):
        pytest.skip(f"needs {path}: run `maskdet-convert fetch-weights` first (.ci/run does)")
    return path


def test_cached_weights_match_the_pinned_checksum(weights_file):
    assert weights.fetch_imagenet_weights(os.path.dirname(weights_file)) == weights_file


def test_backbone_weights_are_copied_by_layer_name(weights_file):
    requires_tensorflow()
    import h5py

    from convert.model import build_backbone

    backbone = build_backbone(96)
    copied = weights.copy_weights_by_name(backbone, weights_file)
    assert copied == 104  # every conv and batch-norm layer of MobileNetV2 1.0
    with h5py.File(weights_file) as f:
        expected = f["model_weights/Conv1/Conv1/kernel:0"][()]
    assert np.array_equal(backbone.get_layer("Conv1").get_weights()[0], expected)


def test_a_weights_file_missing_a_layer_is_a_model_error(tmp_path, weights_file):
    requires_tensorflow()
    import h5py

    from convert.model import build_backbone

    partial = tmp_path / "partial.h5"
    with h5py.File(weights_file) as src, h5py.File(partial, "w") as dst:
        group = dst.create_group("model_weights")
        src.copy(src["model_weights/Conv1"], group, "Conv1")
    with pytest.raises(ModelError, match="no weights for backbone layer bn_Conv1"):
        weights.copy_weights_by_name(build_backbone(96), str(partial))
