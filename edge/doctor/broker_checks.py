"""The broker check of `maskdet doctor`: connect to the MQTT broker as the publisher does (TLS,
user name, password), wait for its answer within the deadline, and name what went wrong: a
refused port, an untrusted or mismatched certificate, a refused login."""
import contextlib
import os
import threading

from edge.doctor.findings import FAIL, OK, Finding, one_line, read_text


def _password(mqtt, environ, conf_dir):
    """(password, where from): the environment / systemd credential as the service reads it,
    else the credential file install.sh keeps beside the config (readable by root)."""
    from edge.mqtt_client import read_password

    password = read_password(mqtt, environ)
    if password:
        return password, "the environment / systemd credential"
    if conf_dir:
        path = os.path.join(conf_dir, mqtt.password_credential)
        with contextlib.suppress(OSError):
            text = read_text(path)
            if text:
                return text, path
    return None, None


def check_broker(mqtt, device_id="doctor", timeout=10.0, environ=None, conf_dir=None):
    """Connect to the broker with the config's TLS settings, user name and password (as the
    publisher does, with a client id of its own so as not to take over the service's session),
    wait for its answer within `timeout` seconds, and disconnect. A refused port, an untrusted or
    mismatched certificate, and a refused login are each named."""
    from edge.mqtt_client import connect_failure

    name = "broker"
    environ = os.environ if environ is None else environ
    where = f"{mqtt.host}:{mqtt.port}{' (TLS)' if mqtt.tls else ''}"
    client = _client(device_id, timeout)
    password, from_where = _password(mqtt, environ, conf_dir)
    if mqtt.username:
        client.username_pw_set(mqtt.username, password)
    answered, result = _listen(client)
    try:
        _connect(client, mqtt)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        detail = connect_failure(exc, mqtt.tls) if isinstance(exc, OSError) else str(exc)
        return Finding(name, FAIL, f"{where}: {one_line(detail)}", _broker_fix(exc, mqtt))
    _wait_and_disconnect(client, answered, timeout)
    if "reason" not in result:
        return Finding(name, FAIL, f"{where}: the connection opened but the broker did not answer "
                       f"within {timeout:g} s", "is this an MQTT port (not HTTP, not the TLS port "
                       "without tls)?")
    reason = result["reason"]
    user = f" as {mqtt.username}" if mqtt.username else " (anonymous)"
    if reason.is_failure:
        given = f", password from {from_where}" if from_where else ", no password found"
        return Finding(name, FAIL, f"{where}: the broker refused the login{user}: {reason}",
                       f"check mqtt.username and the password ($MASKDET_MQTT_PASSWORD or "
                       f"{os.path.join(conf_dir or '/etc/maskdet', mqtt.password_credential)}"
                       f"{given})")
    return Finding(name, OK, f"{where}: connected{user}")


def _client(device_id, timeout):
    """A paho client of the publisher's class, with a client id of the doctor's own."""
    import paho.mqtt.client as paho

    from edge.mqtt_client import client_class

    client = client_class()(paho.CallbackAPIVersion.VERSION2,
                            client_id=f"maskdet-doctor-{device_id}-{os.getpid()}", clean_session=True)
    client.connect_timeout = timeout
    return client


def _listen(client):
    """(an Event set when the broker answers, {"reason": its CONNACK reason code} once it has)."""
    answered, result = threading.Event(), {}

    def on_connect(_client, _userdata, _flags, reason_code, _properties=None):
        result["reason"] = reason_code
        answered.set()

    client.on_connect = on_connect
    return answered, result


def _connect(client, mqtt):
    """Connect, with mqtt.tls when set; raises OSError (ssl.SSLError too) or ValueError."""
    if mqtt.tls:
        client.tls_set(ca_certs=mqtt.tls.ca_file, certfile=mqtt.tls.cert_file,
                       keyfile=mqtt.tls.key_file)
        client.tls_insecure_set(mqtt.tls.insecure)
    client.connect(mqtt.host, mqtt.port, mqtt.keepalive_s)


def _wait_and_disconnect(client, answered, timeout):
    """Run the client's loop until the broker answers or `timeout` seconds pass; disconnect."""
    client.loop_start()
    try:
        answered.wait(timeout)
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
        client.loop_stop()


def _broker_fix(exc, mqtt):
    import socket
    import ssl

    if isinstance(exc, ssl.SSLError):
        return "fix mqtt.tls (the CA that signed the broker's certificate, the host name it " \
               "holds, the clock)"
    if isinstance(exc, ConnectionRefusedError):
        return f"start the broker, or fix mqtt.host / mqtt.port ({mqtt.host}:{mqtt.port})"
    if isinstance(exc, socket.gaierror):
        return "fix mqtt.host, or the name service (DNS, /etc/hosts)"
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return "give readable PEM files in mqtt.tls"
    return "check mqtt.host, mqtt.port, the network and any firewall"
