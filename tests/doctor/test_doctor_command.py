"""`maskdet doctor` as a process: the demo config on this machine (none of the Pi's hardware), a
missing config, mock pins, and the stand-in libedgetpu crashing or hanging under the probe: it
always finishes, with one line (or JSON object) per check and the documented exit status."""
import json
import os
import re
import shutil
import subprocess
import sys

from tests.conftest import copy_shipped_classifier, REPO_ROOT

STATUSES = {"ok", "warn", "fail"}
CHECKS = ["config", "runtime", "libedgetpu", "edgetpu pair", "edgetpu device", "udev rule",
          "groups", "edgetpu probe", "classifier model", "detector model"]
LINE = re.compile(r"^(ok  |warn|FAIL)  [a-z][a-z0-9 _-]*: \S")


def doctor(*args, env=(), timeout=300):
    """`maskdet doctor ARGS` from the repository root, in this environment without the knobs a
    test may have set, plus `env`."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("MASKDET_EDGETPU", "MASKDET_STAND_IN", "GPIOZERO_"))
             and k != "LD_LIBRARY_PATH"}
    return subprocess.run([sys.executable, "-m", "edge.cli", "doctor", *args], capture_output=True,
                          text=True, timeout=timeout, env=dict(clean, **dict(env)), cwd=REPO_ROOT)


def json_findings(proc):
    assert "Traceback" not in proc.stderr, proc.stderr
    found = [json.loads(line) for line in proc.stdout.splitlines()]
    for f in found:
        assert set(f) <= {"check", "status", "detail", "fix", "data"} and f["status"] in STATUSES, f
        assert f["fix"] is None if f["status"] == "ok" else True
    return found


def exit_matches(proc, found):
    return proc.returncode == (1 if any(f["status"] == "fail" for f in found) else 0)


def test_the_demo_config_as_json(tmp_path):
    proc = doctor("--config", "systemd/demo.yaml", "--json", "--timeout", "5")
    found = json_findings(proc)
    assert exit_matches(proc, found), (proc.returncode, proc.stdout)
    names = [f["check"] for f in found]
    assert names[:len(CHECKS)] == CHECKS
    assert names[len(CHECKS):] == ["camera door", "gpio", "broker", "outbox", "disk", "temperature",
                                   "throttling"]
    by_name = {f["check"]: f for f in found}
    assert by_name["config"]["status"] == "ok"
    # None of the Pi's hardware here, and the demo does not need it: said, and fine.
    assert "no Edge TPU found" in by_name["edgetpu device"]["detail"]
    assert by_name["edgetpu device"]["status"] == "ok"
    assert by_name["gpio"]["detail"].startswith("no pins configured")
    assert by_name["outbox"]["status"] == "warn"  # the demo keeps its events in memory


def test_the_text_report_has_one_line_per_check_and_a_summary():
    proc = doctor("--config", "systemd/demo.yaml", "--timeout", "5")
    lines = proc.stdout.splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr
    for line in lines[:-1]:
        assert LINE.match(line), line
        assert ("; fix: " in line) == (not line.startswith("ok")), line
    assert re.fullmatch(r"doctor: \d+ ok, \d+ warn, \d+ FAIL: .*", lines[-1])
    assert proc.returncode == (1 if any(line.startswith("FAIL") for line in lines) else 0)


def test_a_missing_config_is_a_failing_check_not_a_traceback(tmp_path):
    missing = tmp_path / "nope.yaml"
    proc = doctor("--config", str(missing), "--json")
    found = json_findings(proc)
    assert proc.returncode == 1
    assert found[0] == {"check": "config", "status": "fail", "detail": f"{missing} does not exist",
                        "fix": f"copy systemd/maskdet.example.yaml to {missing} and edit it (sudo "
                               "systemd/install.sh does), or give --config FILE"}
    skipped = {f["check"] for f in found if f["detail"] == "not checked: the config did not load"}
    assert skipped == {"cameras", "gpio", "broker", "outbox"}
    assert found[-1]["check"] == "throttling"  # the rest still ran


def test_an_invalid_config_names_the_key(write_config):
    path = write_config("cameras: [{name: door, source: {type: folder, path: x}}]\nmqtt: {port: 0}\n")
    found = json_findings(doctor("--config", path, "--json"))
    assert found[0]["status"] == "fail" and "mqtt.port" in found[0]["detail"]


def pins_config(write_config, tmp_path):
    (tmp_path / "frames").mkdir()
    return write_config(
        "cameras: [{name: door, source: {type: folder, path: %s}}]\n"
        "gpio: {green: {pin: 17}, red: {pin: 27}, buzzer: {pin: 22}}\n"
        "mqtt: {port: 1, outbox_path: ':memory:'}\n" % (tmp_path / "frames"))


def test_the_pins_on_gpiozeros_mock_factory(write_config, tmp_path):
    proc = doctor("--config", pins_config(write_config, tmp_path), "--json",
                  env={"GPIOZERO_PIN_FACTORY": "mock"})
    gpio = next(f for f in json_findings(proc) if f["check"] == "gpio")
    assert gpio["status"] == "ok" and "pin factory MockFactory" in gpio["detail"]
    assert "buzzer GPIO22 (pin 15)" in gpio["detail"]


def test_no_gpio_here_is_said(write_config, tmp_path):
    proc = doctor("--config", pins_config(write_config, tmp_path), "--json")
    gpio = next(f for f in json_findings(proc) if f["check"] == "gpio")
    if gpio["status"] == "ok":
        return  # a machine with a real pin factory (a Raspberry Pi)
    assert gpio["status"] == "fail" and gpio["detail"].startswith("GPIO not available here")
    assert "maskdet[pi]" in gpio["fix"]


def twin_config(write_config, tmp_path):
    """A config whose classifier has an `_edgetpu` build (a copy: the stand-in runs it on the
    CPU), so that the Edge TPU is wanted."""
    folder = tmp_path / "models"
    copy_shipped_classifier(folder)
    shutil.copy(folder / "mask_classifier_int8.tflite", folder / "mask_classifier_int8_edgetpu.tflite")
    (tmp_path / "frames").mkdir()
    return write_config(
        f"cameras: [{{name: door, source: {{type: folder, path: {tmp_path / 'frames'}}}}}]\n"
        f"classifier: {{model: {folder / 'mask_classifier.json'}}}\n"
        "mqtt: {port: 1, outbox_path: ':memory:'}\n")


def test_a_libedgetpu_that_segfaults_is_reported_and_the_doctor_goes_on(
        write_config, tmp_path, stand_in_library):
    proc = doctor("--config", twin_config(write_config, tmp_path), "--json",
                  env={"MASKDET_EDGETPU_LIBRARY": stand_in_library, "MASKDET_STAND_IN": "segv"})
    found = json_findings(proc)
    probe = next(f for f in found if f["check"] == "edgetpu probe")
    assert probe["status"] == "fail" and "SIGSEGV" in probe["detail"]
    assert probe["data"]["kind"] == "crash"
    assert found[-1]["check"] == "throttling" and proc.returncode == 1


def test_a_libedgetpu_that_hangs_is_given_up(write_config, tmp_path, stand_in_library):
    proc = doctor("--config", twin_config(write_config, tmp_path), "--json", "--timeout", "1.5",
                  env={"MASKDET_EDGETPU_LIBRARY": stand_in_library, "MASKDET_STAND_IN": "hang"})
    probe = next(f for f in json_findings(proc) if f["check"] == "edgetpu probe")
    assert probe["status"] == "fail" and "did not answer within 3 s" in probe["detail"]


def test_the_stand_in_answering_through_ld_library_path(write_config, tmp_path, stand_in_library):
    proc = doctor("--config", twin_config(write_config, tmp_path), "--json",
                  env={"LD_LIBRARY_PATH": os.path.dirname(stand_in_library)})
    found = {f["check"]: f for f in json_findings(proc)}
    assert found["edgetpu probe"]["status"] == "ok"
    assert found["libedgetpu"]["data"]["library"] == stand_in_library
    # The classifier's `_edgetpu` build is a plain copy: said.
    assert found["classifier model"]["status"] == "warn"
    assert "edgetpu-custom-op" in found["classifier model"]["detail"]
