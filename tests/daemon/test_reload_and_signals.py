"""Start, reload and stop of `maskdet run` as systemd drives it: real child processes, real
signals (os.kill), sd_notify on a socket the test binds, a real mosquitto, the shared videos, and
gpiozero's MockFactory for the pins (tests/daemon/service_child.py prints them at exit)."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from edge.errors import AcceleratorError, ConfigError, FetchError, ModelError, run_reporting
from edge.service import daemon as daemon_module
from edge.service import run as run_module
from tests.conftest import copy_shipped_classifier, REPO_ROOT, Subscriber, shared_path
from tests.daemon.configs import RED, service_sections

WATCHDOG_USEC = 1_000_000  # pings every 0.5 s


class Notifications:
    """The sd_notify messages sent to a socket the test binds, in order, with arrival times."""

    def __init__(self, path):
        self.path = path
        self.messages = []  # (time.monotonic(), text)
        self._cond = threading.Condition()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(path)
        self._sock.settimeout(0.2)
        self._open = True
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self):
        while self._open:
            try:
                text = self._sock.recv(4096).decode()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._cond:
                self.messages.append((time.monotonic(), text))
                self._cond.notify_all()

    def wait_for(self, wanted, after=0, count=1, timeout=60.0):
        """Block until `count` messages after index `after` contain `wanted`; returns the index
        of the last of them (AssertionError on timeout)."""
        def found():
            hits = [i for i, (_, m) in enumerate(self.messages) if i >= after and wanted in m]
            return hits[count - 1] if len(hits) >= count else None

        with self._cond:
            self._cond.wait_for(lambda: found() is not None, timeout)
            index = found()
        assert index is not None, f"no {count} x {wanted!r} after #{after}: {self.texts()}"
        return index

    def texts(self, start=0, end=None):
        """The messages' texts from index start to end."""
        with self._cond:
            return [m for _, m in self.messages[start:end]]

    def close(self):
        self._open = False
        self._sock.close()


@pytest.fixture
def notifications(tmp_path):
    n = Notifications(str(tmp_path / "notify.sock"))
    yield n
    n.close()


def config_text(broker, tmp_path, cameras=None, extra="", device="pi-rl"):
    """A config watching a looped shared video (one person without a mask), with mock pins."""
    video = shared_path("data", "videos", "one_unmasked.mp4")
    cameras = cameras or f"""
  - name: door
    source: {{type: opencv, url: {video}, fps: 25, loop: true}}"""
    return f"""
device_id: {device}
cameras:{cameras}
{service_sections(broker, tmp_path)}{extra}"""


def start_child(config, notifications, **env):
    """`maskdet run` (through service_child, pins mocked) with NOTIFY_SOCKET and a watchdog."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.daemon.service_child", str(config)], cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, NOTIFY_SOCKET=notifications.path, WATCHDOG_USEC=str(WATCHDOG_USEC),
                 **env))


def finish(proc, timeout=60):
    """Wait for the child; (exit status, its pins, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    report = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"pins": {}}
    return proc.returncode, report["pins"], err


def availability(messages):
    return [p for t, p, _ in messages if t.endswith("/availability")]


def events(messages, types=("no_mask", "mask")):
    """The decision events (person_left and alert_cleared left out unless `types` asks)."""
    found = [json.loads(p) for t, p, _ in messages if t.endswith("/event")]
    return [e for e in found if e["type"] in types]


def last_states(messages, before):
    """{camera: the last state payload} among messages[:before]."""
    states = {}
    for topic, payload, _ in messages[:before]:
        if topic.endswith("/state"):
            states[topic.split("/")[-2]] = json.loads(payload)
    return states


def assert_final_states_then_offline(got, cameras):
    """The last availability is `offline`, and before it each camera's last state is final."""
    assert got[-1][0].endswith("/availability") and got[-1][1] == "offline", got[-3:]
    finals = last_states(got, len(got) - 1)
    assert set(finals) == set(cameras), finals
    for camera, state in finals.items():
        assert state["alert"] is False and state["camera_ok"] is False, (camera, state)
        assert "stopped" in state["error"], (camera, state)


# -- start ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("error", [ModelError("model metadata /x/m.json is not readable JSON:\n"
                                              "Expecting value"),
                                   FetchError("model file /x/y.onnx does not exist")])
def test_a_model_that_cannot_be_built_at_start_is_a_config_error(
        tmp_path, monkeypatch, capsys, caplog, broker, error):
    """ModelError / FetchError while the Daemon is built: exit 78 and one line naming the config
    file and the model; what was logged while building is not written."""
    def broken_build(*settings):
        daemon_module.log.info("loading the models")
        raise error

    monkeypatch.setattr(daemon_module, "build_pipeline", broken_build)
    config = tmp_path / "config.yaml"
    config.write_text(config_text(broker, tmp_path))
    status = run_reporting("maskdet", lambda: run_module.run_service(str(config)))
    err = capsys.readouterr().err
    assert status == 78 == ConfigError.exit_code
    assert err.count("\n") == 1 and str(config) in err and "/x/" in err, err
    assert "loading the models" not in caplog.text


def test_other_errors_at_start_keep_their_exit_status(tmp_path, monkeypatch, broker):
    def broken_build(*settings):
        raise AcceleratorError("the Edge TPU is required but cannot be opened")

    monkeypatch.setattr(daemon_module, "build_pipeline", broken_build)
    config = tmp_path / "config.yaml"
    config.write_text(config_text(broker, tmp_path))
    with pytest.raises(AcceleratorError):
        run_module.run_service(str(config))


def test_a_config_naming_a_bad_model_exits_78_with_one_line(tmp_path, broker):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_text("not a model")
    config = tmp_path / "config.yaml"
    config.write_text(config_text(broker, tmp_path, extra=f"detector: {{type: yunet, model: {garbage}}}\n"))
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 78, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and str(garbage) in proc.stderr, proc.stderr


def test_broken_cameras_open_in_parallel_under_one_deadline_while_the_watchdog_is_fed(
        broker, tmp_path, notifications):
    cameras = f"""
  - name: usb
    source: {{type: opencv, url: /dev/video99}}
  - name: file
    source: {{type: opencv, url: {tmp_path / 'missing.mp4'}}}"""
    config = tmp_path / "config.yaml"
    config.write_text(config_text(broker, tmp_path, cameras=cameras))
    sub = Subscriber(broker, "maskdet/pi-rl/#")
    started = time.monotonic()
    proc = start_child(config, notifications)
    ready = notifications.wait_for("READY=1", timeout=3 * daemon_module.READY_TIMEOUT_S)
    took = notifications.messages[ready][0] - started
    assert daemon_module.READY_TIMEOUT_S - 1 <= took < 1.5 * daemon_module.READY_TIMEOUT_S, took
    pings = notifications.texts(0, ready).count("WATCHDOG=1")
    assert pings >= daemon_module.READY_TIMEOUT_S / (WATCHDOG_USEC / 2e6) / 2, notifications.texts()
    notifications.wait_for("WATCHDOG=1", after=ready + 1)  # both down, known: the loop pings
    got = sub.wait_for(lambda m: {"usb", "file"} <= {s for s, v in last_states(m, len(m)).items()
                                                      if not v["camera_ok"] and v["error"]})
    proc.send_signal(signal.SIGTERM)
    status, pins, err = finish(proc)
    assert status == 0, err[-3000:]
    got = sub.wait_for(lambda m: m and m[-1][1] == "offline")
    assert_final_states_then_offline(got, {"usb", "file"})
    sub.close()


# -- reload --------------------------------------------------------------------------------------

def test_a_reload_keeps_the_connection_and_does_not_announce_a_decided_person_again(
        broker, tmp_path, notifications):
    config = tmp_path / "config.yaml"
    config.write_text(config_text(broker, tmp_path))
    sub = Subscriber(broker, "maskdet/pi-rl/#")
    proc = start_child(config, notifications)
    try:
        notifications.wait_for("READY=1")
        sub.wait_for(lambda m: events(m))  # the person is decided no_mask
        config.write_text(config_text(broker, tmp_path, extra="log_level: DEBUG\n").replace(
            "alert_clear_s: 1.0", "alert_clear_s: 2.0, min_frames: 3"))
        os.kill(proc.pid, signal.SIGHUP)
        reloading = notifications.wait_for("RELOADING=1")
        ready = notifications.wait_for("READY=1", after=reloading)
        # frames flow under the new config for a while (the loop pings only while they do)
        notifications.wait_for("WATCHDOG=1", after=ready, count=8)
        os.kill(proc.pid, signal.SIGTERM)
    finally:
        status, pins, err = finish(proc)
    assert status == 0, err[-3000:]
    assert "MONOTONIC_USEC=" in notifications.texts()[reloading]
    assert not any("STOPPING=1" in m for m in notifications.texts(reloading, ready))
    assert "configuration reloaded" in err
    got = sub.wait_for(lambda m: m and m[-1][1] == "offline")
    assert availability(got) == ["online", "offline"]  # no offline / online at the reload
    kinds = [(e["track_id"], e["type"]) for e in events(got)]
    assert kinds == [(1, "no_mask")], kinds  # decided once, before the reload, not again
    assert_final_states_then_offline(got, {"door"})
    assert pins[str(RED)]["ever_on"] and not any(p["state"] for p in pins.values()), pins
    sub.close()


def test_a_reload_that_cannot_be_built_keeps_the_running_configuration(
        broker, tmp_path, notifications):
    """The new config validates (check-config accepts it) but building it fails: the Edge TPU is
    required and there is none here. The service goes on with the running configuration."""
    models = tmp_path / "models"
    copy_shipped_classifier(models)
    (models / "mask_classifier_int8_edgetpu.tflite").write_bytes(b"an Edge TPU build")
    config = tmp_path / "config.yaml"
    config.write_text(config_text(broker, tmp_path))
    sub = Subscriber(broker, "maskdet/pi-rl/#")
    proc = start_child(config, notifications)
    try:
        notifications.wait_for("READY=1")
        sub.wait_for(lambda m: events(m))
        config.write_text(config_text(broker, tmp_path, extra=f"""
classifier: {{model: {models / 'mask_classifier.json'}}}
accelerator: {{mode: edgetpu, require: true}}
"""))
        check = subprocess.run([sys.executable, "-m", "edge.cli", "check-config", str(config)],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert check.returncode == 0, check.stderr
        os.kill(proc.pid, signal.SIGHUP)
        reloading = notifications.wait_for("RELOADING=1")
        ready = notifications.wait_for("READY=1", after=reloading)
        notifications.wait_for("WATCHDOG=1", after=ready, count=4)
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGTERM)
    finally:
        status, pins, err = finish(proc)
    assert status == 0, err[-3000:]
    assert "reload refused" in err and "Edge TPU is required" in err, err[-3000:]
    assert not any("STOPPING=1" in m for m in notifications.texts(reloading, ready))
    got = sub.wait_for(lambda m: m and m[-1][1] == "offline")
    assert availability(got) == ["online", "offline"]
    assert [(e["track_id"], e["type"]) for e in events(got)] == [(1, "no_mask")]
    sub.close()


def test_a_reload_that_changes_the_mqtt_section_reconnects_once(broker, tmp_path, notifications):
    """The one case where a reload is seen on the broker: new connection settings need a new
    connection (offline, then online), and the service goes on."""
    config = tmp_path / "config.yaml"
    config.write_text(config_text(broker, tmp_path))
    sub = Subscriber(broker, "maskdet/pi-rl/#")
    proc = start_child(config, notifications)
    try:
        notifications.wait_for("READY=1")
        sub.wait_for(lambda m: events(m))
        config.write_text(config_text(broker, tmp_path).replace("stats_interval_s: 1",
                                                                "stats_interval_s: 1\n  keepalive_s: 20"))
        os.kill(proc.pid, signal.SIGHUP)
        ready = notifications.wait_for("READY=1", after=notifications.wait_for("RELOADING=1"))
        sub.wait_for(lambda m: availability(m) == ["online", "offline", "online"])
        notifications.wait_for("WATCHDOG=1", after=ready, count=4)
        os.kill(proc.pid, signal.SIGTERM)
    finally:
        status, pins, err = finish(proc)
    assert status == 0, err[-3000:]
    got = sub.wait_for(lambda m: m and m[-1][1] == "offline")
    assert availability(got) == ["online", "offline", "online", "offline"]
    assert [(e["track_id"], e["type"]) for e in events(got)] == [(1, "no_mask")]
    sub.close()


# -- stop ----------------------------------------------------------------------------------------

def test_sigterm_in_the_middle_of_a_reload_is_honoured(broker, tmp_path, notifications):
    """The reload adds a camera that cannot open, so the new daemon waits for it; a SIGTERM then
    ends the service at once, cleanly: final states, `offline`, lights off, exit 0."""
    config = tmp_path / "config.yaml"
    config.write_text(config_text(broker, tmp_path))
    sub = Subscriber(broker, "maskdet/pi-rl/#")
    proc = start_child(config, notifications)
    try:
        notifications.wait_for("READY=1")
        sub.wait_for(lambda m: any(json.loads(p)["alert"] for t, p, _ in m if t.endswith("/state")))
        video = shared_path("data", "videos", "one_unmasked.mp4")
        config.write_text(config_text(broker, tmp_path, cameras=f"""
  - name: door
    source: {{type: opencv, url: {video}, fps: 25, loop: true}}
  - name: side
    source: {{type: opencv, url: /dev/video99}}"""))
        os.kill(proc.pid, signal.SIGHUP)
        reloading = notifications.wait_for("RELOADING=1")
        notifications.wait_for("WATCHDOG=1", after=reloading, count=3)  # the heartbeat
        stopped_at = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        status, pins, err = finish(proc, timeout=daemon_module.READY_TIMEOUT_S)
        took = time.monotonic() - stopped_at
    finally:
        if proc.poll() is None:
            proc.kill()
    assert status == 0, err[-3000:]
    assert took < daemon_module.READY_TIMEOUT_S / 2, took
    after = notifications.texts(reloading)
    assert not any("READY=1" in m for m in after) and any("STOPPING=1" in m for m in after), after
    got = sub.wait_for(lambda m: m and m[-1][1] == "offline")
    assert_final_states_then_offline(got, {"door", "side"})
    assert availability(got) == ["online", "offline"]
    assert pins[str(RED)]["ever_on"] and not any(p["state"] for p in pins.values()), pins
    sub.close()


def test_sigterm_during_an_alert_leaves_a_true_final_state_and_the_lights_off(
        broker, tmp_path, notifications):
    config = tmp_path / "config.yaml"
    config.write_text(config_text(broker, tmp_path))
    sub = Subscriber(broker, "maskdet/pi-rl/#")
    proc = start_child(config, notifications)
    try:
        notifications.wait_for("READY=1")
        sub.wait_for(lambda m: last_states(m, len(m)).get("door", {}).get("alert"))
        os.kill(proc.pid, signal.SIGTERM)
    finally:
        status, pins, err = finish(proc)
    assert status == 0, err[-3000:]
    got = sub.wait_for(lambda m: m and m[-1][1] == "offline")
    assert_final_states_then_offline(got, {"door"})
    assert pins[str(RED)]["ever_on"] and not any(p["state"] for p in pins.values()), pins
    sub.close()
    # what a monitor that connects later sees (retained): the device offline, no alert
    later = Subscriber(broker, "maskdet/pi-rl/#")
    retained = later.wait_for(lambda m: len(m) >= 2)
    assert all(r for _, _, r in retained)
    assert availability(retained) == ["offline"]
    assert last_states(retained, len(retained))["door"]["alert"] is False
    later.close()


def test_a_reloaded_daemon_that_fails_to_start_is_logged_and_the_service_goes_on(caplog):
    """After the hand-over there is no way back: a part that fails to start is reported and the
    frame loop goes on (the service does not die with the door's light)."""
    class Successor:
        def start(self):
            raise ModelError("/opt/maskdet/models/x.json: the warm-up inference failed")

    run_module.Service._start_reloaded(Successor())  # does not raise
    assert "did not start completely" in caplog.text and "warm-up" in caplog.text
