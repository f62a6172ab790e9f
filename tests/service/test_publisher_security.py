"""User name / password and TLS against a real mosquitto (password file, self-signed CA)."""
import logging
import shutil
import subprocess

import pytest

from edge.service import payloads
from edge.config.schema import MqttConfig, TlsConfig
from edge.service.publisher import Publisher
from tests.conftest import Broker


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


def connect(broker, tmp_path, monkeypatch, password, **kw):
    monkeypatch.setenv("MASKDET_MQTT_PASSWORD", password)
    config = MqttConfig(host=broker.host, port=broker.port, username="door-pi", keepalive_s=5,
                        outbox_path=str(tmp_path / f"o-{password}.db"), **kw)
    pub = Publisher(config, "pi-sec", ["door"])
    pub.start()
    return pub


def test_the_right_password_from_the_environment_connects(password_broker, tmp_path, monkeypatch):
    pub = connect(password_broker, tmp_path, monkeypatch, "s3cret")
    assert pub.connected.wait(10)
    pub.close()


def test_a_wrong_password_is_refused_and_said(password_broker, tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.WARNING):
        pub = connect(password_broker, tmp_path, monkeypatch, "wrong")
        assert not pub.connected.wait(3)
    assert "refused the connection" in caplog.text
    pub.close()


@pytest.fixture
def tls_broker(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("needs openssl")
    ca_key, ca_crt = tmp_path / "ca.key", tmp_path / "ca.crt"
    key, csr, crt, ext = tmp_path / "srv.key", tmp_path / "srv.csr", tmp_path / "srv.crt", tmp_path / "ext"
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=maskdet test CA",
        "-keyout", str(ca_key), "-out", str(ca_crt))
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-extfile", str(ext), "-out", str(crt))
    broker = Broker(tmp_path, listener_options=[f"cafile {ca_crt}", f"certfile {crt}", f"keyfile {key}"]).start()
    yield broker, str(ca_crt)
    broker.stop()


def test_tls_with_the_broker_ca_delivers_events(tls_broker, tmp_path):
    broker, ca = tls_broker
    config = MqttConfig(host=broker.host, port=broker.port, keepalive_s=5, tls=TlsConfig(ca_file=ca),
                        outbox_path=str(tmp_path / "o.db"))
    pub = Publisher(config, "pi-tls", ["door"])
    pub.start()
    assert pub.connected.wait(10)
    pub.publish_event("door", payloads.event("no_mask", "door", 1, 0.9, (0, 0, 9, 9), "pi-tls"))
    pub.drain(10)
    assert pub.idle  # the broker acknowledged it over TLS
    pub.close()


def tls_warnings(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name == "edge.service.publisher" and r.levelno == logging.WARNING]


def connect_tls(host, port, tls, tmp_path, caplog):
    """A publisher that tries for 3 s; returns whether it connected and its warnings."""
    config = MqttConfig(host=host, port=port, keepalive_s=5, tls=tls, outbox_path=str(tmp_path / "o.db"))
    with caplog.at_level(logging.WARNING, logger="edge.service.publisher"):
        pub = Publisher(config, "pi-tls", ["door"])
        pub.start()
        connected = pub.connected.wait(3)
        pub.close()
    return connected, tls_warnings(caplog)


def test_tls_without_the_ca_does_not_connect_and_says_the_certificate_is_not_trusted(
        tls_broker, tmp_path, caplog):
    broker, _ = tls_broker
    connected, warnings = connect_tls(broker.host, broker.port, TlsConfig(), tmp_path, caplog)
    assert not connected  # a self-signed broker is not trusted by the system CAs
    assert warnings, "no warning about the failed connection"
    assert f"MQTT broker 127.0.0.1:{broker.port}: TLS certificate not trusted (certificate verify " \
           "failed: " in warnings[0]
    assert "set mqtt.tls.ca_file to the broker's CA" in warnings[0]
    assert len(warnings) == 1  # the same cause again is not repeated at WARNING


def test_a_wrong_ca_is_named_as_an_untrusted_certificate(tls_broker, tmp_path, caplog):
    broker, _ = tls_broker
    other_key, other_ca = tmp_path / "other.key", tmp_path / "other.crt"
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=another CA", "-keyout", str(other_key), "-out", str(other_ca))
    connected, warnings = connect_tls(broker.host, broker.port, TlsConfig(ca_file=str(other_ca)),
                                      tmp_path, caplog)
    assert not connected
    assert len(warnings) == 1, warnings
    # OpenSSL says "self-signed certificate in certificate chain" (mosquitto sends its CA too)
    assert f"MQTT broker 127.0.0.1:{broker.port}: TLS certificate not trusted (certificate verify " \
           "failed: self-signed certificate" in warnings[0]
    assert f"mqtt.tls.ca_file {other_ca} did not sign the broker's certificate" in warnings[0]
    assert "cannot reach" not in warnings[0]


def test_a_host_name_the_certificate_does_not_hold_is_named(tls_broker, tmp_path, caplog):
    broker, ca = tls_broker  # the certificate holds IP 127.0.0.1 only, not the name localhost
    connected, warnings = connect_tls("localhost", broker.port, TlsConfig(ca_file=ca), tmp_path,
                                      caplog)
    assert not connected
    assert len(warnings) == 1, warnings
    assert f"MQTT broker localhost:{broker.port}: TLS host name mismatch (certificate verify " \
           "failed: Hostname mismatch, certificate is not valid for 'localhost'" in warnings[0]
    assert "set mqtt.host to a name or address the broker's certificate holds" in warnings[0]


def test_a_closed_port_is_named_as_refused(tmp_path, caplog):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    connected, warnings = connect_tls("127.0.0.1", port, None, tmp_path, caplog)
    assert not connected
    assert warnings and f"MQTT broker 127.0.0.1:{port}: connection refused" in warnings[0]
