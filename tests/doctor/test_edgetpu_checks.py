"""The runtime, libedgetpu, pair, probe and model checks: the probe against the stand-in
libedgetpu (ok, no device, segfault, abort, hang) in the Edge TPU worker process."""
import os
import shutil
import time

import pytest

from edge.config.schema import load_config
from edge.doctor import edgetpu_want, installed_service, model_checks, runtime_checks
from edge.doctor.edgetpu_want import REQUIRED, UNUSED, WANTED
from edge.doctor.findings import FAIL, OK, WARN
from edge.doctor.runtime_checks import Libedgetpu
from edge.inference.accelerator import AcceleratorSettings
from edge.inference.runtime import find_runtime
from tests.conftest import damage_last_byte


def stub(folder, name, text):
    path = os.path.join(folder, name)
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\n" + text)
    os.chmod(path, 0o755)
    return path


# --- what the config wants -------------------------------------------------------------------

def test_how_much_the_edge_tpu_is_wanted(classifier_copy):
    _, model = classifier_copy
    auto = AcceleratorSettings()
    assert edgetpu_want.tpu_want(auto, [model]) == UNUSED  # no _edgetpu build beside it
    assert edgetpu_want.tpu_want(AcceleratorSettings(mode="edgetpu"), [model]) == WANTED
    assert edgetpu_want.tpu_want(AcceleratorSettings(mode="edgetpu", require=True), [model]) == REQUIRED
    shutil.copy(model, model.replace(".tflite", "_edgetpu.tflite"))
    assert edgetpu_want.tpu_want(auto, [model]) == WANTED
    assert edgetpu_want.tpu_want(AcceleratorSettings(require=True), [model]) == REQUIRED
    assert edgetpu_want.tpu_want(AcceleratorSettings(mode="cpu", require=True), [model]) == UNUSED


# --- the runtime -----------------------------------------------------------------------------

def test_the_runtime_maskdet_uses_and_its_version(tmp_path):
    finding, name, version = runtime_checks.check_runtime({}, str(tmp_path))
    assert finding.status == OK and name == find_runtime().name
    assert finding.detail.startswith(f"{name} {version}")
    assert version and version[0].isdigit()


def test_the_runtime_named_in_the_services_drop_in(tmp_path):
    drop_in = tmp_path / "etc/systemd/system/maskdet.service.d/coral.conf"
    drop_in.parent.mkdir(parents=True)
    drop_in.write_text(f"[Service]\nEnvironment=MASKDET_RUNTIME={find_runtime().name}\n")
    finding, name, _ = runtime_checks.check_runtime({}, str(tmp_path))
    assert finding.status == OK
    assert "(chosen by /etc/systemd/system/maskdet.service.d/coral.conf)" in finding.detail


def test_the_services_environment_from_its_unit_and_drop_ins(tmp_path):
    unit = tmp_path / "etc/systemd/system/maskdet.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nEnvironment=MASKDET_MODELS=/opt/maskdet/models\n"
                    "Environment=MASKDET_CACHE=/var/cache/maskdet\nEnvironment=PYTHONUNBUFFERED=1\n")
    drop_in = tmp_path / "etc/systemd/system/maskdet.service.d/coral.conf"
    drop_in.parent.mkdir()
    drop_in.write_text('[Service]\nEnvironment="MASKDET_RUNTIME=tflite_runtime" "MASKDET_CACHE=/srv/c"\n')
    found = installed_service.service_environment(str(tmp_path))
    assert found["MASKDET_MODELS"] == ("/opt/maskdet/models", "/etc/systemd/system/maskdet.service")
    assert found["MASKDET_CACHE"] == ("/srv/c", "/etc/systemd/system/maskdet.service.d/coral.conf")
    assert installed_service.service_runtime({}, str(tmp_path))[0] == "tflite_runtime"
    assert installed_service.service_runtime({"MASKDET_RUNTIME": "ai_edge_litert"}, str(tmp_path)) == \
        ("ai_edge_litert", "$MASKDET_RUNTIME")


def test_a_runtime_that_is_not_installed_fails():
    missing = next(n for n, _ in runtime_checks.RUNTIMES if n not in dict(runtime_checks.runtime_versions()))
    finding, name, _ = runtime_checks.check_runtime({"MASKDET_RUNTIME": missing})
    assert finding.status == FAIL and name is None and missing in finding.detail


# --- libedgetpu ------------------------------------------------------------------------------

def test_the_packages_dpkg_has_installed(tmp_path):
    dpkg_query = stub(str(tmp_path), "dpkg-query",
                      'echo "libedgetpu1-std 16.0tf2.17.1-1 ii "\n'
                      'echo "dpkg-query: no packages found matching libedgetpu1-max" >&2\nexit 1\n')
    assert runtime_checks.installed_packages(dpkg_query) == {"libedgetpu1-std": "16.0tf2.17.1-1"}
    removed = stub(str(tmp_path), "dpkg-query-rc", 'echo "libedgetpu1-max 16.0 rc "\n')
    assert runtime_checks.installed_packages(removed) == {}
    assert runtime_checks.installed_packages(str(tmp_path / "absent")) == {}
    # This machine's own dpkg has neither (they are not installable here).
    assert runtime_checks.installed_packages() == {}


def test_the_library_is_found_as_the_worker_finds_it(tmp_path, stand_in_library):
    assert runtime_checks.find_library({"MASKDET_EDGETPU_LIBRARY": stand_in_library}) == \
        (stand_in_library, "$MASKDET_EDGETPU_LIBRARY")
    folder = os.path.dirname(stand_in_library)
    assert runtime_checks.find_library({"LD_LIBRARY_PATH": f"/nonexistent:{folder}"}) == \
        (stand_in_library, "$LD_LIBRARY_PATH")
    ldconfig = stub(str(tmp_path), "ldconfig",
                    'echo "12 libs found in cache"\n'
                    f'echo "\tlibedgetpu.so.1 (libc6,x86-64) => {stand_in_library}"\n')
    assert runtime_checks.find_library({}, ldconfig) == (stand_in_library, "ldconfig -p")
    assert runtime_checks.find_library({}, str(tmp_path / "absent")) == (None, None)


def test_libedgetpu_installed_and_found():
    finding, info = runtime_checks.check_libedgetpu(
        WANTED, {"libedgetpu1-std": "16.0tf2.17.1-1"},
        ("/usr/lib/aarch64-linux-gnu/libedgetpu.so.1", "ldconfig -p"))
    assert finding.status == OK and info.version == "16.0tf2.17.1-1"
    assert "libedgetpu1-std 16.0tf2.17.1-1 (std clock)" in finding.detail


def test_libedgetpu_packaged_but_not_found_by_the_loader():
    finding, _ = runtime_checks.check_libedgetpu(WANTED, {"libedgetpu1-max": "16.0"}, (None, None))
    assert finding.status == FAIL and "ldconfig" in finding.fix


@pytest.mark.parametrize("want, status", [(UNUSED, OK), (WANTED, WARN), (REQUIRED, FAIL)])
def test_libedgetpu_not_installed(want, status):
    finding, info = runtime_checks.check_libedgetpu(want, {}, (None, None))
    assert finding.status == status and info == Libedgetpu()
    assert "not installed" in finding.detail
    if want != UNUSED:
        assert "install.sh --coral" in finding.fix


def test_an_unpackaged_library_has_an_unknown_build(stand_in_library):
    finding, info = runtime_checks.check_libedgetpu(WANTED, {}, (stand_in_library, "$LD_LIBRARY_PATH"))
    assert finding.status == WARN and "not from a libedgetpu1-std / -max package" in finding.detail


def test_the_pair_verdict():
    lib = Libedgetpu("libedgetpu1-std", "16.0", "/usr/lib/libedgetpu.so.1")
    crash = runtime_checks.check_pair(WANTED, "tflite_runtime", "2.14.0", lib)
    assert crash.status == FAIL and "SIGSEGV" in crash.detail
    assert runtime_checks.check_pair(UNUSED, "tflite_runtime", "2.14.0", lib).status == WARN
    good = Libedgetpu("libedgetpu1-std", "16.0tf2.17.1-1", "/usr/lib/libedgetpu.so.1")
    assert runtime_checks.check_pair(WANTED, "tflite_runtime", "2.17.1", good).status == OK
    assert runtime_checks.check_pair(WANTED, "ai_edge_litert", "2.3.0", good).status == FAIL
    assert runtime_checks.check_pair(WANTED, "ai_edge_litert", "2.3.0", Libedgetpu()).status == OK
    unpackaged = Libedgetpu(library="/tmp/libedgetpu.so.1")
    assert runtime_checks.check_pair(WANTED, "ai_edge_litert", "2.3.0", unpackaged).status == FAIL
    assert runtime_checks.check_pair(WANTED, "tflite_runtime", "2.17.1", unpackaged).status == WARN


# --- the probe, in the worker process ---------------------------------------------------------

@pytest.fixture
def runtime_name():
    return find_runtime().name


def test_the_probe_loads_the_delegate_in_a_child_process(stand_in, classifier_copy, runtime_name):
    _, model = classifier_copy
    finding = runtime_checks.check_probe(WANTED, model, runtime_name, "usb", timeout=30)
    assert finding.status == OK, finding
    assert "the delegate loaded in a child process" in finding.detail and "on usb" in finding.detail
    calls = stand_in.calls()
    assert len(calls) == 1 and calls[0][0] != os.getpid() and calls[0][1] == "usb"


def test_the_probe_reports_a_crash_as_a_mismatch_and_goes_on(stand_in, classifier_copy, runtime_name):
    _, model = classifier_copy
    stand_in.behave("segv")
    finding = runtime_checks.check_probe(WANTED, model, runtime_name, timeout=30)
    assert finding.status == FAIL and finding.data["kind"] == "crash"
    assert "do not match (crashed with SIGSEGV while loading)" in finding.detail
    assert "install.sh --coral" in finding.fix
    # Not wanted: still said, as a warning.
    assert runtime_checks.check_probe(UNUSED, model, runtime_name, timeout=30).status == WARN


def test_the_probe_reports_an_abort(stand_in, classifier_copy, runtime_name):
    _, model = classifier_copy
    stand_in.behave("abort")
    finding = runtime_checks.check_probe(WANTED, model, runtime_name, timeout=30)
    assert finding.status == FAIL and "SIGABRT" in finding.detail and "cable" in finding.fix


def test_the_probe_gives_up_on_a_hang_at_its_deadline(stand_in, classifier_copy, runtime_name):
    _, model = classifier_copy
    stand_in.behave("hang")
    started = time.monotonic()
    finding = runtime_checks.check_probe(WANTED, model, runtime_name, timeout=3)
    assert time.monotonic() - started < 15
    assert finding.status == FAIL and "did not answer within 3 s" in finding.detail
    assert "replug" in finding.fix


@pytest.mark.parametrize("want, status", [(UNUSED, OK), (WANTED, WARN), (REQUIRED, FAIL)])
def test_the_probe_without_a_device(stand_in, classifier_copy, runtime_name, want, status):
    _, model = classifier_copy
    stand_in.behave("none")
    finding = runtime_checks.check_probe(want, model, runtime_name, timeout=30)
    assert finding.status == status and "no Edge TPU device could be opened" in finding.detail


def test_the_probe_through_ld_library_path(stand_in, classifier_copy, runtime_name, monkeypatch):
    _, model = classifier_copy
    monkeypatch.delenv("MASKDET_EDGETPU_LIBRARY")
    monkeypatch.setenv("LD_LIBRARY_PATH", stand_in.folder)
    assert runtime_checks.check_probe(WANTED, model, runtime_name, timeout=30).status == OK


def test_the_probe_without_libedgetpu(classifier_copy, runtime_name, tmp_path):
    _, model = classifier_copy
    finding = runtime_checks.check_probe(WANTED, model, runtime_name, timeout=30,
                                 library=str(tmp_path / "libedgetpu.so.1"))
    assert finding.status == WARN and finding.data["kind"] == "missing"
    assert "cannot open shared object file" in finding.detail or "No such file" in finding.detail


# --- models ----------------------------------------------------------------------------------

def config_for(write_config, meta, accelerator="{}"):
    return load_config(write_config(
        "cameras: [{name: door, source: {type: folder, path: /nonexistent}}]\n"
        f"classifier: {{model: {meta}}}\naccelerator: {accelerator}\n"))


def test_the_classifier_matches_its_metadata_and_runs(write_config, classifier_copy):
    meta, model = classifier_copy
    finding = model_checks.check_classifier_model(config_for(write_config, meta))
    assert finding.status == OK
    assert "matches mask_classifier.json" in finding.detail
    assert "opens and runs on the CPU" in finding.detail
    assert "no Edge TPU build mask_classifier_int8_edgetpu.tflite: the CPU runs it" in finding.detail
    assert len(finding.data["sha256"]) == 64


def test_a_pairs_second_model_is_named_and_its_damage_fails(write_config, classifier_copy):
    """The shipped pair: the doctor names the second opinion, and a damaged one fails the
    check with its file named, not a traceback."""
    import json

    meta, _ = classifier_copy
    with open(meta, encoding="utf-8") as handle:
        second = json.load(handle)["files"].get("second_opinion")
    if second is None:
        pytest.skip("the shipped classifier has no second opinion")
    finding = model_checks.check_classifier_model(config_for(write_config, meta))
    assert finding.status == OK and f"with its second opinion {second}" in finding.detail
    damage_last_byte(os.path.join(os.path.dirname(meta), second))
    finding = model_checks.check_classifier_model(config_for(write_config, meta))
    assert finding.status == FAIL and second in finding.detail and "sha256" in finding.detail


def test_a_classifier_that_is_not_its_metadatas_fails(write_config, classifier_copy):
    meta, model = classifier_copy
    damage_last_byte(model)
    finding = model_checks.check_classifier_model(config_for(write_config, meta))
    assert finding.status == FAIL and "not the model the metadata describes" in finding.detail


def test_a_missing_edge_tpu_build_with_a_coral_here_says_where_to_compile(write_config, classifier_copy):
    meta, _ = classifier_copy
    finding = model_checks.check_classifier_model(config_for(write_config, meta), coral_present=True)
    assert finding.status == WARN and "although a Coral is here" in finding.detail
    assert "maskdet-convert compile mask_classifier_int8.tflite" in finding.fix
    assert "x86-64 Debian" in finding.fix
    assert f"copy mask_classifier_int8_edgetpu.tflite beside the CPU model in {os.path.dirname(meta)}" \
        in finding.fix
    required = model_checks.check_classifier_model(
        config_for(write_config, meta, "{mode: edgetpu, require: true}"))
    assert required.status == FAIL and "required" in required.detail


def test_an_edge_tpu_build_is_reported_and_must_be_compiled(write_config, classifier_copy):
    meta, model = classifier_copy
    twin = model.replace(".tflite", "_edgetpu.tflite")
    shutil.copy(model, twin)  # a copy: not compiled
    finding = model_checks.check_classifier_model(config_for(write_config, meta))
    assert finding.status == WARN and "holds no edgetpu-custom-op" in finding.detail
    with open(model, "rb") as src, open(twin, "wb") as dst:  # what the compiler leaves in a file
        dst.write(src.read() + b"edgetpu-custom-op")
    finding = model_checks.check_classifier_model(config_for(write_config, meta))
    assert finding.status == OK
    assert "Edge TPU build mask_classifier_int8_edgetpu.tflite" in finding.detail
    assert len(finding.data["edgetpu_sha256"]) == 64


def test_a_real_compiled_model_counts_as_compiled(shared):
    compiled = os.path.join(shared, "models", "coral_pair", "mask_detector_quant_v2_edgetpu.tflite")
    cpu = os.path.join(shared, "models", "coral_pair", "mask_detector_quant_v2.tflite")
    if not os.path.isfile(compiled):
        pytest.skip(f"needs {compiled}")
    assert model_checks._compiled(compiled) and not model_checks._compiled(cpu)


def test_the_detector_file_against_its_pinned_sha256(write_config, tmp_path, monkeypatch):
    from edge.inference.fetch import CATALOG

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("MASKDET_CACHE", str(cache))
    config = load_config(write_config("cameras: [{name: door, source: {type: folder, path: /x}}]\n"))
    missing = model_checks.check_detector_model(config)
    assert missing.status == FAIL and "maskdet models fetch" in missing.fix
    (cache / CATALOG["yunet"].filename).write_bytes(b"not the model")
    wrong = model_checks.check_detector_model(config)
    assert wrong.status == FAIL and "not the pinned" in wrong.detail


def test_a_tflite_detector_is_checked_for_its_edge_tpu_build(write_config, classifier_copy):
    _, model = classifier_copy  # any TFLite file stands for an SSD detector's here
    config = load_config(write_config(
        "cameras: [{name: door, source: {type: folder, path: /x}}]\n"
        f"detector: {{type: ssd, model: {model}}}\n"))
    finding = model_checks.check_detector_model(config, coral_present=True)
    assert finding.status == WARN and "ssd:" in finding.detail and "no Edge TPU build" in finding.detail
