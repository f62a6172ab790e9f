"""`maskdet run` as systemd runs it: a real process, sd_notify on a real socket, signals."""
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, Subscriber, shared_path


def write_config(path, broker, tmp_path, extra=""):
    video = shared_path("data", "videos", "one_masked.mp4")
    path.write_text(f"""
device_id: pi-proc
cameras:
  - name: door
    source: {{type: opencv, url: {video}, fps: 25, loop: true}}
mqtt:
  host: {broker.host}
  port: {broker.port}
  outbox_path: {tmp_path / 'outbox.db'}
{extra}""")


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    yield path, sock
    sock.close()


def start(config, notify_path, **env):
    return subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="1000000",
                                     **env))


def receive_until(sock, wanted):
    seen = []
    while True:
        message = sock.recv(4096).decode()
        seen.append(message)
        if wanted in message:
            return seen


def test_ready_watchdog_reload_and_sigterm(broker, tmp_path, notify_socket):
    notify_path, sock = notify_socket
    config = tmp_path / "config.yaml"
    write_config(config, broker, tmp_path)
    sub = Subscriber(broker, "maskdet/pi-proc/#")
    proc = start(config, notify_path)
    try:
        assert any("READY=1" in m for m in receive_until(sock, "READY=1"))
        receive_until(sock, "WATCHDOG=1")  # pings come from the frame loop
        # SIGHUP with a broken file: refused, the service goes on
        config.write_text(config.read_text() + "\nbogus_key: 1\n")
        proc.send_signal(signal.SIGHUP)
        receive_until(sock, "READY=1")
        receive_until(sock, "WATCHDOG=1")
        assert proc.poll() is None
        # SIGHUP with a good file: reloaded
        write_config(config, broker, tmp_path, extra="log_level: DEBUG\n")
        proc.send_signal(signal.SIGHUP)
        receive_until(sock, "READY=1")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "reload refused" in err and "bogus_key" in err
    assert "configuration reloaded" in err
    got = sub.wait_for(lambda m: m and m[-1][1] == "offline")
    assert got[-1][0] == "maskdet/pi-proc/availability"
    states = [json.loads(p) for t, p, _ in got if t.endswith("/state")]
    assert states and states[-1]["accelerator"] == "cpu"
    assert states[-1]["alert"] is False and states[-1]["camera_ok"] is False  # final, before offline
    assert [p for t, p, _ in got if t.endswith("/availability")] == ["online", "offline"]
    sub.close()


def test_a_bad_config_exits_78_with_the_key_and_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("cameras:\n  - name: door\n    source: {type: webcam}\n")
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78
    assert "cameras[0].source.type (line 3)" in proc.stderr and "Traceback" not in proc.stderr
    missing = subprocess.run([sys.executable, "-m", "edge.cli", "check-config", str(tmp_path / "none.yaml")],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 78 and "none.yaml" in missing.stderr
