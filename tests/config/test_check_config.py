"""`check_config`: every reason `maskdet run` would fail at start is a one-line ConfigError that
names the file, the key and what is wrong; real bad files are written in tmp_path."""
import importlib.util
import json
import os
import shutil
import subprocess

import pytest

from edge.config import checks
from edge.config.checks import check_config
from edge.errors import ConfigError
from edge.inference.fetch import cached_path
from edge.inference.model_meta import sha256_of
from edge.paths import models_dir, shared_dir
from tests.conftest import run_cli
from tests.config.helpers import GARBAGE, assert_one_line_error, base_config, write_config


def refused(path, *words):
    with pytest.raises(ConfigError) as caught:
        check_config(path)
    return assert_one_line_error(caught.value, path, *words)


def test_the_base_config_passes(tmp_path):
    config = check_config(write_config(tmp_path))
    assert config.cameras[0].source.url == "0"
    assert os.path.isdir(tmp_path / "state")  # the outbox folder is made, as run makes it


# -- 1. the classifier's metadata and model file -----------------------------------------------

SHIPPED_META = os.path.join(models_dir(), "mask_classifier.json")


def copy_classifier(tmp_path, change=None, model=True):
    """The shipped classifier copied into tmp_path/clf, its metadata changed by change(dict)."""
    folder = tmp_path / "clf"
    folder.mkdir(exist_ok=True)
    with open(SHIPPED_META) as f:
        meta = json.load(f)
    if model:
        for file in meta["files"].values():  # the model, and a second opinion's
            shutil.copy(os.path.join(models_dir(), file), folder / file)
    if change:
        change(meta)
    path = folder / "mask_classifier.json"
    path.write_text(json.dumps(meta))
    return path


def with_classifier(tmp_path, meta_path):
    return write_config(tmp_path, {"classifier.model": str(meta_path)})


def test_a_copied_classifier_passes(tmp_path):
    check_config(with_classifier(tmp_path, copy_classifier(tmp_path)))


def test_missing_classifier_metadata(tmp_path):
    missing = tmp_path / "nowhere" / "mask_classifier.json"
    config = with_classifier(tmp_path, missing)
    refused(config, "classifier.model", str(missing), "does not exist")


def test_classifier_metadata_that_is_a_folder(tmp_path):
    config = with_classifier(tmp_path, tmp_path)
    refused(config, "classifier.model", "is a folder")


def test_the_tflite_model_given_as_the_metadata(tmp_path):
    model = os.path.join(models_dir(), "mask_classifier_int8.tflite")
    refused(with_classifier(tmp_path, model), "classifier.model", model, "not the .tflite")


def test_metadata_that_is_not_json(tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text("{labels: [mask")
    refused(with_classifier(tmp_path, meta), "classifier.model", str(meta), "not readable JSON")


@pytest.mark.parametrize("change, words", [
    (lambda m: m.update(labels="mask,no_mask"), ["'labels'", "list"]),
    (lambda m: m.update(labels={"mask": 0, "no_mask": 1}), ["'labels'", "list"]),
    (lambda m: m.update(labels=["mask", "mask"]), ["'labels'", "twice"]),
    (lambda m: m.update(threshold="0.5"), ["'threshold'", "a number", "str"]),
    (lambda m: m.update(threshold="high"), ["'threshold'", "a number"]),
    (lambda m: m.update(threshold=True), ["'threshold'", "a number"]),
    (lambda m: m.update(threshold=1.5), ["'threshold'", "strictly between 0.0 and 1.0"]),
    (lambda m: m.pop("threshold"), ["missing key 'threshold'"]),
    (lambda m: m.pop("positive_label"), ["missing key 'positive_label'"]),
    (lambda m: m["input"].pop("crop_margin"), ["missing key 'input.crop_margin'"]),
    (lambda m: m["input"].update(size="224"), ["'input.size'", "whole number"]),
    (lambda m: m["input"]["normalization"].update(std=0), ["'input.normalization.std'", "above 0"]),
    (lambda m: m["input"]["normalization"].update(mean=float("nan")), ["'input.normalization.mean'"]),
    (lambda m: m.update(files={"int8": 5}), ["'files.int8'"]),
    (lambda m: m.update(sha256={}), ["missing key 'sha256.mask_classifier_int8.tflite'"]),
])
def test_bad_metadata_names_the_file_and_the_key(tmp_path, change, words):
    meta = copy_classifier(tmp_path, change)
    refused(with_classifier(tmp_path, meta), "classifier.model", str(meta), *words)


def test_metadata_that_is_a_list(tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text("[1, 2]")
    refused(with_classifier(tmp_path, meta), "classifier.model", "JSON object")


def test_a_missing_classifier_model_file(tmp_path):
    meta = copy_classifier(tmp_path, model=False)
    refused(with_classifier(tmp_path, meta), "classifier.model",
            str(tmp_path / "clf" / "mask_classifier_int8.tflite"), "does not exist")


def test_a_missing_second_opinion_model_file_is_named(tmp_path):
    """The shipped pair without its second model: named as such, before anything runs."""
    meta = copy_classifier(tmp_path)
    with open(meta, encoding="utf-8") as handle:
        second = json.load(handle)["files"].get("second_opinion")
    if second is None:
        pytest.skip("the shipped classifier has no second opinion")
    (tmp_path / "clf" / second).unlink()
    refused(with_classifier(tmp_path, meta), "classifier.model",
            "the second opinion's model file", str(tmp_path / "clf" / second), "does not exist")


def test_a_classifier_model_file_that_is_a_folder(tmp_path):
    meta = copy_classifier(tmp_path, model=False)
    (tmp_path / "clf" / "mask_classifier_int8.tflite").mkdir()
    refused(with_classifier(tmp_path, meta), "classifier.model", "is a folder")


def test_a_replaced_classifier_model_file(tmp_path):
    meta = copy_classifier(tmp_path)
    (tmp_path / "clf" / "mask_classifier_int8.tflite").write_bytes(b"\0\0\0\0TFL3" + b"\0" * 64)
    refused(with_classifier(tmp_path, meta), "classifier.model", "sha256")


# -- 3. a classifier whose outputs do not match its labels -------------------------------------

def test_a_1001_class_model_is_not_a_mask_classifier(tmp_path):
    imagenet = os.path.join(shared_dir(), "models", "mobilenet_v2_1.0_224_quant.tflite")
    if not os.path.isfile(imagenet):
        pytest.skip(f"needs {imagenet}")
    meta = copy_classifier(tmp_path, model=False)
    shutil.copy(imagenet, tmp_path / "clf" / "mask_classifier_int8.tflite")
    data = json.loads(meta.read_text())
    data["sha256"] = {"mask_classifier_int8.tflite": sha256_of(imagenet)}
    data.pop("second_opinion", None)  # one model
    data["files"].pop("second_opinion", None)
    data["input"]["size"], data["input"]["shape"] = 224, [1, 224, 224, 3]  # as ImageNet's model
    meta.write_text(json.dumps(data))
    refused(with_classifier(tmp_path, meta), "classifier.model", "gives 1001 scores per face",
            "2 labels")


# -- 2. detector files ---------------------------------------------------------------------

def with_detector(tmp_path, **settings):
    data = base_config(tmp_path)
    data["detector"] = settings
    return write_config(tmp_path, base=data)


def cached(key):
    path = cached_path(key)
    if not os.path.isfile(path):
        pytest.skip(f"needs {path}: run `maskdet models fetch {key}`")
    return path


def test_a_missing_detector_file(tmp_path):
    missing = str(tmp_path / "yunet.onnx")
    refused(with_detector(tmp_path, model=missing), "detector.model", missing, "does not exist")


def test_a_detector_key_not_fetched(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKDET_CACHE", str(tmp_path / "empty-cache"))
    refused(with_detector(tmp_path, type="blazeface", variant="short"), "detector.model",
            "face_detection_short_range.tflite", "maskdet models fetch blazeface_short")


def test_a_detector_folder_instead_of_a_file(tmp_path):
    refused(with_detector(tmp_path, type="ssd", model=str(tmp_path)), "detector.model")


def test_res10_without_its_graph(tmp_path, monkeypatch):
    model = cached("res10_caffemodel")
    monkeypatch.setenv("MASKDET_CACHE", str(tmp_path / "empty-cache"))
    refused(with_detector(tmp_path, type="res10", model=model), "detector.type",
            "res10_prototxt", "maskdet models fetch")


def test_a_garbage_caffemodel_for_res10(tmp_path):
    cached("res10_prototxt")
    bad = tmp_path / "res10.caffemodel"
    bad.write_bytes(GARBAGE)
    refused(with_detector(tmp_path, type="res10", model=str(bad)), "detector.model", str(bad),
            "res10")


def _onnx_identity(path, shape):
    """A valid ONNX file that is not YuNet: y = x for an input of `shape`."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "not_yunet", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("make", ["garbage", "rank2", "rank4"])
def test_an_onnx_that_opencv_cannot_run_as_yunet(tmp_path, make):
    path = tmp_path / f"{make}.onnx"
    if make == "garbage":
        path.write_bytes(GARBAGE)
    else:
        _onnx_identity(path, [1, 8] if make == "rank2" else [1, 3, 32, 32])
    refused(with_detector(tmp_path, model=str(path), engine="opencv"), "detector.model",
            str(path), "YuNet")


def _needs_onnxruntime():
    if not all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnx")):
        pytest.skip("needs onnxruntime and onnx")


def test_an_onnx_of_the_wrong_rank_on_onnxruntime(tmp_path):
    _needs_onnxruntime()
    path = _onnx_identity(tmp_path / "rank2.onnx", [1, 8])
    refused(with_detector(tmp_path, model=path, engine="onnxruntime"), "detector.model", path,
            "not a YuNet model", "2 dimensions")


def test_an_onnx_that_is_not_yunet_on_onnxruntime(tmp_path):
    _needs_onnxruntime()
    path = _onnx_identity(tmp_path / "rank4.onnx", [1, 3, 32, 32])
    refused(with_detector(tmp_path, model=path, engine="onnxruntime"), "detector.model", path,
            "not a YuNet 2023 model")


def test_a_garbage_onnx_on_onnxruntime(tmp_path):
    _needs_onnxruntime()
    path = tmp_path / "garbage.onnx"
    path.write_bytes(GARBAGE)
    refused(with_detector(tmp_path, model=str(path), engine="onnxruntime"), "detector.model",
            str(path), "cannot be opened as an ONNX model")


def test_a_blazeface_file_of_the_other_variant(tmp_path):
    short = cached("blazeface_short")
    refused(with_detector(tmp_path, type="blazeface", variant="full", model=short),
            "detector.model", short, "variant")


def test_a_blazeface_sized_model_that_is_not_blazeface(tmp_path):
    imagenet = os.path.join(shared_dir(), "models", "mobilenet_v2_1.0_224_quant.tflite")
    if not os.path.isfile(imagenet):
        pytest.skip(f"needs {imagenet}")
    refused(with_detector(tmp_path, type="blazeface", model=imagenet), "detector.model", imagenet)


@pytest.mark.parametrize("which", ["imagenet", "blazeface", "garbage"])
def test_a_tflite_that_is_not_an_ssd(tmp_path, which):
    if which == "imagenet":
        path = os.path.join(shared_dir(), "models", "mobilenet_v2_1.0_224_quant.tflite")
        if not os.path.isfile(path):
            pytest.skip(f"needs {path}")
    elif which == "blazeface":
        path = cached("blazeface_full")
    else:
        path = str(tmp_path / "ssd.tflite")
        with open(path, "wb") as f:
            f.write(GARBAGE)
    refused(with_detector(tmp_path, type="ssd", model=path), "detector.model", path)


def test_ssd_without_a_model(tmp_path):
    refused(with_detector(tmp_path, type="ssd"), "detector.model", "give its file")


def test_the_edge_tpu_build_is_required_when_the_accelerator_is(tmp_path):
    meta = copy_classifier(tmp_path)
    path = write_config(tmp_path, {"classifier.model": str(meta),
                                   "accelerator": {"mode": "edgetpu", "require": True}})
    refused(path, "accelerator.require", "mask_classifier_int8_edgetpu.tflite")
    # Not required: run falls back to the CPU twin, so the config is valid.
    check_config(write_config(tmp_path, {"classifier.model": str(meta),
                                         "accelerator": {"mode": "edgetpu", "require": False}}))
    # Required and present: the device itself is not checked (it comes and goes).
    shutil.copy(tmp_path / "clf" / "mask_classifier_int8.tflite",
                tmp_path / "clf" / "mask_classifier_int8_edgetpu.tflite")
    check_config(path)


@pytest.mark.parametrize("device, ok", [("usb", True), ("usb:1", True), ("pci:0", True),
                                        (":0", True), ("usb0", False), ("/dev/apex_0", False)])
def test_the_edge_tpu_device_name(tmp_path, device, ok):
    path = write_config(tmp_path, {"accelerator.device": device})
    if ok:
        check_config(path)
    else:
        refused(path, "accelerator.device", device)


# -- 4. the outbox -------------------------------------------------------------------------

def test_an_outbox_folder_that_cannot_be_made(tmp_path):
    (tmp_path / "a-file").write_text("")
    path = write_config(tmp_path, {"mqtt.outbox_path": str(tmp_path / "a-file" / "outbox.db")})
    refused(path, "mqtt.outbox_path", "a-file")


def test_an_outbox_path_that_is_a_folder(tmp_path):
    path = write_config(tmp_path, {"mqtt.outbox_path": str(tmp_path)})
    refused(path, "mqtt.outbox_path", str(tmp_path))


def test_an_outbox_folder_that_is_not_writable(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("this user (root) may write to any folder")
        path = write_config(tmp_path, {"mqtt.outbox_path": str(folder / "outbox.db")})
        refused(path, "mqtt.outbox_path", "not writable")
    finally:
        folder.chmod(0o755)


def test_an_in_memory_outbox_needs_no_folder(tmp_path):
    check_config(write_config(tmp_path, {"mqtt.outbox_path": ":memory:"}))


def test_a_missing_outbox_folder_is_made(tmp_path):
    outbox = tmp_path / "var" / "lib" / "maskdet" / "outbox.db"
    check_config(write_config(tmp_path, {"mqtt.outbox_path": str(outbox)}))
    assert outbox.parent.is_dir()


# -- 5. TLS files ----------------------------------------------------------------------------

def _openssl(*args):
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command")
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A self-signed certificate (also the CA), its key, an encrypted copy, another key; made once
    for the module (RSA keys take a while)."""
    d = tmp_path_factory.mktemp("pki")
    for name in ("a", "b"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                 f"/CN={name}", "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.crt"))
    _openssl("pkey", "-in", str(d / "a.key"), "-aes256", "-passout", "pass:secret",
             "-out", str(d / "a-encrypted.key"))
    return d


def with_tls(tmp_path, **tls):
    return write_config(tmp_path, {"mqtt.tls": tls})


def test_good_tls_files_pass(tmp_path, pki):
    check_config(with_tls(tmp_path, ca_file=str(pki / "a.crt"), cert_file=str(pki / "a.crt"),
                          key_file=str(pki / "a.key")))


def test_a_missing_ca_file(tmp_path):
    missing = str(tmp_path / "ca.crt")
    refused(with_tls(tmp_path, ca_file=missing), "mqtt.tls.ca_file", missing, "does not exist")


def test_a_ca_file_that_is_not_pem(tmp_path):
    der = tmp_path / "ca.der"
    der.write_bytes(b"\x30\x82\x03\x0b" + bytes(range(256)) * 2)
    refused(with_tls(tmp_path, ca_file=str(der)), "mqtt.tls.ca_file", str(der), "-----BEGIN")


def test_a_ca_file_holding_only_a_key(tmp_path, pki):
    refused(with_tls(tmp_path, ca_file=str(pki / "a.key")), "mqtt.tls.ca_file",
            "no usable CA certificate")


def test_a_missing_client_certificate(tmp_path):
    missing = str(tmp_path / "client.crt")
    refused(with_tls(tmp_path, cert_file=missing), "mqtt.tls.cert_file", missing)


def test_a_key_that_is_not_pem(tmp_path, pki):
    bad = tmp_path / "client.key"
    bad.write_bytes(GARBAGE)
    refused(with_tls(tmp_path, cert_file=str(pki / "a.crt"), key_file=str(bad)),
            "mqtt.tls.key_file", "-----BEGIN")


def test_a_key_of_another_certificate(tmp_path, pki):
    refused(with_tls(tmp_path, cert_file=str(pki / "a.crt"), key_file=str(pki / "b.key")),
            "mqtt.tls.key_file", "do not load")


def test_an_encrypted_key(tmp_path, pki):
    refused(with_tls(tmp_path, cert_file=str(pki / "a.crt"), key_file=str(pki / "a-encrypted.key")),
            "mqtt.tls.key_file", "encrypted")


# -- MQTT client settings run refuses --------------------------------------------------------

def test_a_password_without_a_user_name(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKDET_MQTT_PASSWORD", "secret")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = write_config(tmp_path)
    refused(path, "mqtt.username", "MASKDET_MQTT_PASSWORD")
    check_config(write_config(tmp_path, {"mqtt.username": "door"}))


def test_an_empty_host_is_refused(tmp_path):
    refused(write_config(tmp_path, {"mqtt.host": "  "}), "mqtt.host", "empty")


# -- device_id from the host name ------------------------------------------------------------

def test_the_host_name_as_device_id_is_checked_too(tmp_path):
    # Without device_id the host name is used, which the loader does not see: check_loaded does.
    import dataclasses

    config = check_config(write_config(tmp_path))
    with pytest.raises(ConfigError) as caught:
        checks.check_loaded(dataclasses.replace(config, device_id="bad#host"), "config.yaml")
    assert_one_line_error(caught.value, "config.yaml", "device_id", "bad#host")


# -- GPIO ------------------------------------------------------------------------------------

def test_gpio_pins_without_gpiozero(tmp_path):
    """A process in which gpiozero cannot be imported (as on a machine without the pi extra)."""
    code = ("import sys; sys.modules['gpiozero'] = None; from edge.cli import main; "
            "sys.exit(main(['check-config', sys.argv[1]]))")
    with_pins = run_cli("-c", code, write_config(tmp_path, {"gpio.red": {"pin": 27}}))
    assert with_pins.returncode == 78 and "gpiozero" in with_pins.stderr, with_pins.stderr
    assert "gpio" in with_pins.stderr and "Traceback" not in with_pins.stderr
    no_pins = run_cli("-c", code, write_config(tmp_path))
    assert no_pins.returncode == 0, no_pins.stderr  # no pins: gpiozero is not needed


def test_a_check_leaves_opencv_threads_as_they_were(tmp_path):
    # The daemon checks the new config at reload while the running one keeps working.
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        check_config(write_config(tmp_path, {"accelerator.threads": 1}))
        assert cv2.getNumThreads() == 3
        bad = tmp_path / "bad.onnx"
        bad.write_bytes(GARBAGE)
        refused(write_config(tmp_path, {"detector.model": str(bad)}), "detector.model")
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)
