"""Config files for the tests: a small valid config that tests change one key of."""
import copy
import os

import pytest
import yaml

from edge.paths import shared_dir


# Not a model in any format: protobuf (ONNX, Caffe) stops at the field number 0 of the first
# byte, TFLite finds no TFL3 identifier, PEM no -----BEGIN line. (Random bytes are not used:
# protobuf parses a short random buffer now and then.)
GARBAGE = b"\x00not a model\n" * 300


def shared_yunet():
    """The shared YuNet model (so the tests need no `maskdet models fetch`), or a skip."""
    path = os.path.join(shared_dir(), "models", "face_detection_yunet_2023mar.onnx")
    if not os.path.isfile(path):
        pytest.skip(f"needs {path}: set MASKDET_SHARED to the shared data folder")
    return path


def base_config(tmp_path):
    """A valid config as a dict: one opencv camera, the shipped classifier, an outbox in tmp."""
    return {
        "device_id": "test-pi",
        "cameras": [{"name": "door", "source": {"type": "opencv", "url": "0"}}],
        "detector": {"type": "yunet", "model": shared_yunet()},
        "mqtt": {"host": "localhost", "outbox_path": str(tmp_path / "state" / "outbox.db")},
    }


def set_key(data, dotted, value):
    """Set `a.b[0].c` in a nested dict / list, making mappings on the way."""
    node = data
    parts = dotted.replace("]", "").replace("[", ".").split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        key = int(part) if part.isdigit() else part
        if last:
            node[key] = value
        else:
            if isinstance(key, str) and (key not in node or node[key] is None):
                node[key] = {}
            node = node[key]
    return data


def write_config(tmp_path, changes=None, base=None, name="config.yaml"):
    """Write base (or base_config) with `changes` ({dotted key: value}) applied; returns the path."""
    data = copy.deepcopy(base if base is not None else base_config(tmp_path))
    for key, value in (changes or {}).items():
        set_key(data, key, value)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def assert_one_line_error(exc, path, *words):
    """The ConfigError text: starts with the file name, one line, names each of `words`."""
    text = str(exc)
    assert text.startswith(f"{path}: "), text
    assert "\n" not in text, text
    for word in words:
        assert word in text, f"{word!r} not in: {text}"
    return text
