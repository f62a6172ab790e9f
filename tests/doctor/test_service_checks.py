"""The camera, GPIO and broker checks on real things: a shared video and an image folder as
cameras, gpiozero's MockFactory as pins, a real mosquitto (plain, with a password, with TLS) and a
closed port as brokers."""
import shutil
import socket
import subprocess
import threading
import time

import pytest

from edge.config.schema import (CameraConfig, GpioConfig, MqttConfig, PinConfig, SourceConfig,
                                TlsConfig)
from edge.doctor import broker_checks, camera_checks, gpio_checks
from edge.doctor.findings import FAIL, OK, WARN
from tests.conftest import Broker, shared_path


# --- cameras ---------------------------------------------------------------------------------

def camera(**source):
    return CameraConfig("door", SourceConfig(**source))


def test_a_video_file_gives_its_first_frame():
    video = shared_path("data", "videos", "one_masked.mp4")
    finding = camera_checks.check_camera(camera(type="opencv", url=video), timeout=20)
    assert finding.status == OK and "first frame 720x404" in finding.detail
    assert finding.name == "camera door"


def test_an_image_folder_is_a_camera(tmp_path):
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((48, 64, 3), np.uint8))
    finding = camera_checks.check_camera(camera(type="folder", path=str(tmp_path)))
    assert finding.status == OK and "64x48" in finding.detail


def test_a_missing_camera_device_is_not_found():
    finding = camera_checks.check_camera(camera(type="opencv", url="/dev/video99"), timeout=20)
    assert finding.status == FAIL and finding.detail == "/dev/video99 does not exist: camera not found"
    assert "v4l2-ctl --list-devices" in finding.fix


def test_a_missing_relative_video_file_names_the_current_folder():
    finding = camera_checks.check_camera(camera(type="opencv", url="videos/nope.mp4"), timeout=20)
    assert finding.status == FAIL and "cannot open videos/nope.mp4" in finding.detail
    assert "relative path is taken from the current folder" in finding.fix


def test_picamera2_without_its_bindings_says_what_to_install():
    finding = camera_checks.check_camera(camera(type="picamera2"), timeout=20)
    if finding.status == OK:
        pytest.skip("this machine has a Raspberry Pi camera")
    assert finding.status == FAIL and "python3-picamera2" in finding.fix


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never says anything (a stuck stream)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def test_a_camera_that_blocks_is_given_up_at_the_deadline(silent_server):
    started = time.monotonic()
    url = f"http://127.0.0.1:{silent_server}/video.mjpg"
    finding = camera_checks.check_camera(camera(type="opencv", url=url), timeout=1.5)
    assert time.monotonic() - started < 5
    assert finding.status == FAIL and "no frame within 1.5 s" in finding.detail, finding


# --- GPIO ------------------------------------------------------------------------------------

@pytest.fixture
def mock_factory():
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    yield factory
    factory.reset()


PINS = GpioConfig(green=PinConfig(17), red=PinConfig("GPIO27"), buzzer=None)


def test_no_pins_is_fine():
    finding = gpio_checks.check_gpio(GpioConfig())
    assert finding.status == OK and "no pins configured" in finding.detail


def test_the_pins_are_claimed_and_released(mock_factory):
    finding = gpio_checks.check_gpio(PINS, mock_factory)
    assert finding.status == OK
    assert finding.detail == ("green LED GPIO17 (pin 11), red LED GPIO27 (pin 13): claimed and "
                              "released (pin factory MockFactory)")
    # Released, and off: the service can take them.
    from gpiozero import LED

    LED(17, pin_factory=mock_factory).close()
    assert mock_factory.pin(17).state is False


def test_a_pin_held_by_another_program_is_a_warning(mock_factory):
    from gpiozero import LED

    holder = LED(27, pin_factory=mock_factory)
    try:
        finding = gpio_checks.check_gpio(PINS, mock_factory)
    finally:
        holder.close()
    assert finding.status == WARN and "red LED GPIO27 (pin 13)" in finding.detail
    assert "in use" in finding.detail and "systemctl stop maskdet" in finding.fix


# --- the broker ------------------------------------------------------------------------------

def mqtt(broker_or_port, **kw):
    host, port = ("127.0.0.1", broker_or_port) if isinstance(broker_or_port, int) else \
        (broker_or_port.host, broker_or_port.port)
    return MqttConfig(host=kw.pop("host", host), port=port, keepalive_s=5, **kw)


def test_the_broker_answers(broker):
    finding = broker_checks.check_broker(mqtt(broker), timeout=10, environ={})
    assert finding.status == OK and finding.detail == f"127.0.0.1:{broker.port}: connected (anonymous)"


def test_a_closed_port_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    finding = broker_checks.check_broker(mqtt(port), timeout=5, environ={})
    assert finding.status == FAIL and "connection refused" in finding.detail
    assert "start the broker" in finding.fix


def test_an_unknown_host_is_named():
    finding = broker_checks.check_broker(mqtt(1883, host="no-such-host.invalid"), timeout=5, environ={})
    assert finding.status == FAIL and "host name not found" in finding.detail


def run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture
def password_broker(tmp_path):
    if not shutil.which("mosquitto_passwd"):
        pytest.skip("needs mosquitto_passwd (package mosquitto)")
    passwords = tmp_path / "passwd"
    run("mosquitto_passwd", "-b", "-c", str(passwords), "door-pi", "s3cret")
    broker = Broker(tmp_path, listener_options=[f"password_file {passwords}"], anonymous=False).start()
    yield broker
    broker.stop()


def test_the_login_with_the_password_beside_the_config(password_broker, tmp_path):
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "mqtt-password").write_text("s3cret\n")
    finding = broker_checks.check_broker(mqtt(password_broker, username="door-pi"), environ={},
                                  conf_dir=str(conf))
    assert finding.status == OK and "connected as door-pi" in finding.detail


def test_a_refused_login_is_named(password_broker):
    finding = broker_checks.check_broker(mqtt(password_broker, username="door-pi"),
                                  environ={"MASKDET_MQTT_PASSWORD": "wrong"})
    assert finding.status == FAIL and "the broker refused the login as door-pi" in finding.detail
    assert "MASKDET_MQTT_PASSWORD" in finding.fix


@pytest.fixture
def tls_broker(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("needs openssl")
    ca_key, ca_crt = tmp_path / "ca.key", tmp_path / "ca.crt"
    key, csr, crt, ext = (tmp_path / name for name in ("srv.key", "srv.csr", "srv.crt", "ext"))
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=maskdet doctor test CA", "-keyout", str(ca_key), "-out", str(ca_crt))
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
        str(key), "-out", str(csr))
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))
    broker = Broker(tmp_path, listener_options=[f"cafile {ca_crt}", f"certfile {crt}",
                                                f"keyfile {key}"]).start()
    yield broker, str(ca_crt)
    broker.stop()


def test_tls_with_the_brokers_ca_connects(tls_broker):
    broker, ca = tls_broker
    finding = broker_checks.check_broker(mqtt(broker, tls=TlsConfig(ca_file=ca)), environ={})
    assert finding.status == OK and "(TLS): connected" in finding.detail


def test_tls_without_the_ca_names_the_untrusted_certificate(tls_broker):
    broker, _ = tls_broker
    finding = broker_checks.check_broker(mqtt(broker, tls=TlsConfig()), environ={})
    assert finding.status == FAIL and "TLS certificate not trusted" in finding.detail
    assert "mqtt.tls" in finding.fix


def test_tls_to_a_name_the_certificate_does_not_hold(tls_broker):
    broker, ca = tls_broker
    finding = broker_checks.check_broker(mqtt(broker, host="localhost", tls=TlsConfig(ca_file=ca)), environ={})
    assert finding.status == FAIL and "TLS host name mismatch" in finding.detail


def test_plain_mqtt_to_a_tls_port_does_not_hang(tls_broker):
    broker, _ = tls_broker
    started = time.monotonic()
    finding = broker_checks.check_broker(mqtt(broker), timeout=3, environ={})
    assert time.monotonic() - started < 10
    assert finding.status == FAIL and "did not answer within 3 s" in finding.detail, finding
