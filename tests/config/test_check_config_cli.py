"""`maskdet check-config FILE` as a real process: exit 78, one line on stderr that names the file
and the key, no traceback; exit 0 for a valid file."""
import json
import os
import shutil

import pytest

from edge.paths import models_dir
from tests.conftest import run_cli
from tests.config.helpers import GARBAGE, write_config

NAN_CONFIG = """cameras:
  - name: door
    source: {type: opencv, url: 0}
mqtt: {outbox_path: ':memory:'}
decision:
  no_mask_above: .nan
"""


def check(path):
    return run_cli("-m", "edge.cli", "check-config", str(path), timeout=120)


def assert_refused(proc, path, key):
    assert proc.returncode == 78, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and key in lines[0], lines[0]
    return lines[0]


def test_a_valid_config_with_url_0_exits_0(tmp_path):
    path = write_config(tmp_path, {"cameras[0].source.url": 0})
    proc = check(path)
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout and "Traceback" not in proc.stderr


def test_a_latin1_config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(NAN_CONFIG.replace("decision:\n  no_mask_above: .nan\n", "device_id: café\n")
                     .encode("latin-1"))
    line = assert_refused(check(path), path, "UTF-8")
    assert "position" in line


def test_nan(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(NAN_CONFIG)
    assert_refused(check(path), path, "decision.no_mask_above (line 6)")


def test_a_device_id_with_mqtt_wildcards(tmp_path):
    path = write_config(tmp_path, {"device_id": "a/#"})
    assert_refused(check(path), path, "device_id")


def test_an_empty_broker_host(tmp_path):
    path = write_config(tmp_path, {"mqtt.host": " "})
    assert_refused(check(path), path, "mqtt.host")


def test_classifier_metadata_with_a_string_threshold(tmp_path):
    folder = tmp_path / "clf"
    folder.mkdir()
    with open(os.path.join(models_dir(), "mask_classifier.json")) as f:
        meta = json.load(f)
    for file in meta["files"].values():  # the model, and a second opinion's
        shutil.copy(os.path.join(models_dir(), file), folder)
    meta["threshold"] = "0.5"
    (folder / "mask_classifier.json").write_text(json.dumps(meta))
    path = write_config(tmp_path, {"classifier.model": str(folder / "mask_classifier.json")})
    line = assert_refused(check(path), path, "classifier.model")
    assert "'threshold'" in line


def test_a_bad_onnx_on_the_opencv_engine(tmp_path):
    bad = tmp_path / "yunet.onnx"
    bad.write_bytes(GARBAGE)
    path = write_config(tmp_path, {"detector.model": str(bad), "detector.engine": "opencv"})
    line = assert_refused(check(path), path, "detector.model")
    assert str(bad) in line


def test_an_outbox_folder_that_cannot_be_made(tmp_path):
    (tmp_path / "a-file").write_text("")
    path = write_config(tmp_path, {"mqtt.outbox_path": str(tmp_path / "a-file" / "outbox.db")})
    assert_refused(check(path), path, "mqtt.outbox_path")


def test_a_missing_ca_file(tmp_path):
    path = write_config(tmp_path, {"mqtt.tls": {"ca_file": str(tmp_path / "ca.crt")}})
    assert_refused(check(path), path, "mqtt.tls.ca_file")


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_run_and_check_config_agree_on_a_schema_error(tmp_path, command):
    path = tmp_path / "config.yaml"
    path.write_text(NAN_CONFIG)
    args = [command, str(path)] if command == "check-config" else [command, "--config", str(path)]
    proc = run_cli("-m", "edge.cli", *args, timeout=120)
    assert_refused(proc, path, "decision.no_mask_above")
