"""What `maskdet check-config` checks beyond the schema: everything `maskdet run` needs at start,
so that a config that checks as valid also starts. `check_config(path)` is the one source of
truth: `maskdet check-config FILE` calls it, and so does the daemon at start and on reload.

The rule. A config error (ConfigError, exit 78, one line `FILE: KEY: what is wrong and what to do`)
is whatever would stop `run` at start and does not fix itself without someone editing the config
or the files it names:
- values: the schema (`schema.py`, strict types, ranges, finite numbers, MQTT topic levels);
- files the config names or implies: the classifier's metadata and model (opened, on the CPU,
  and run once on a blank face), the detector's model (resolved as `run` resolves it, opened on
  the CPU and run once on a blank frame, as `run` does before it says READY), the files a
  detector type needs beside its model (res10's graph), the Edge TPU builds when the accelerator
  is required (`mode: edgetpu`, `require: true`), the TLS CA / certificate / key (readable PEM
  that OpenSSL loads, a key without a passphrase), the outbox's folder (created when missing, as
  `run` would, and writable);
- what `run` refuses when it builds the MQTT client: a password (environment or systemd
  credential) without `mqtt.username`;
- the HTTP view: listening beyond loopback without a token (environment or systemd credential),
  or with a token too short to resist guessing; the snapshot folder (created when missing, and
  writable) when snapshots are kept;
- libraries a configured part needs: gpiozero when GPIO pins are set.
Not config errors, because they come and go while the service runs and `run` reports them and
retries: a camera that is absent, unplugged or not yet streaming (a missing device, RTSP URL,
video file or image folder), the MQTT broker being unreachable or its name not resolving, the
Edge TPU device being absent or failing (the CPU twin takes over unless it is required). The
Edge TPU is never opened here: models are opened with AcceleratorSettings(mode="cpu", threads=1).

Relative paths are taken from the current folder, as `run` takes them: check a config from the
folder the service starts in (systemd's WorkingDirectory).
"""
import importlib.util
import os
import re
import ssl

from edge.config.schema import load_config, topic_level
from edge.errors import ConfigError, MaskdetError
from edge.paths import default_classifier

# libedgetpu's device names: usb, usb:N, pci, pci:N, or :N (the Nth Edge TPU of any kind).
EDGETPU_DEVICE = re.compile(r"(usb|pci)(:\d+)?|:\d+")
PEM_MARK = b"-----BEGIN"
BLANK_FRAME = (360, 640, 3)  # what `run` analyses once before it tells systemd READY


def one_line(message):
    """A message on one line (OpenCV's, OpenSSL's and YAML's texts span several)."""
    return " ".join(str(message).split())


def config_error(filename, key, message):
    """A ConfigError `FILE: KEY: message`, on one line."""
    return ConfigError(one_line(f"{filename}: {key}: {message}"))


def check_names(config, filename):
    """The effective device_id (the host name when the config leaves it out) is a topic level."""
    problem = topic_level(config.device_id)
    if problem:
        raise config_error(filename, "device_id", f"{config.device_id!r} {problem}")


def check_gpio(config, filename):
    """GPIO pins need gpiozero, which `run` imports when any pin is set."""
    gpio = config.gpio
    if (gpio.green or gpio.red or gpio.buzzer) and importlib.util.find_spec("gpiozero") is None:
        raise config_error(filename, "gpio", "pins are set but gpiozero is not installed: "
                           "pip install 'maskdet[pi]', or remove the pins")


def check_accelerator(config, filename):
    """accelerator.device is a name libedgetpu knows (else the Edge TPU is silently not used)."""
    device = config.accelerator.device
    if device is not None and not EDGETPU_DEVICE.fullmatch(device):
        raise config_error(filename, "accelerator.device", f"{device!r} is not an Edge TPU device: "
                           "use usb, usb:N, pci, pci:N or :N, or null for the first one found")


def check_mqtt(config, filename):
    """What `run` refuses when it builds the MQTT client, and the TLS files."""
    from edge.mqtt_client import read_password

    mqtt = config.mqtt
    if not mqtt.username and read_password(mqtt):
        raise config_error(filename, "mqtt.username", "an MQTT password is set (environment "
                           f"variable {mqtt.password_env} or systemd credential "
                           f"{mqtt.password_credential}) but mqtt.username is empty: set the "
                           "user name, or remove the password")
    if mqtt.tls is not None:
        check_tls(mqtt.tls, filename)


def _pem_file(filename, key, path):
    if not os.path.exists(path):
        raise config_error(filename, key, f"{path} does not exist: give the path of a PEM file")
    if os.path.isdir(path):
        raise config_error(filename, key, f"{path} is a folder: give the path of a PEM file")
    try:
        with open(path, "rb") as handle:
            data = handle.read(1 << 20)
    except OSError as exc:
        raise config_error(filename, key, f"{path} cannot be read ({exc.strerror or exc}): give "
                           "the service user read access") from None
    if PEM_MARK not in data:
        raise config_error(filename, key, f"{path} is not a PEM file (no '-----BEGIN' line): "
                           "convert it, e.g. `openssl x509 -inform der -in FILE -out FILE.pem`")


class _EncryptedKey(Exception):
    """OpenSSL asked for the key's passphrase, which the service cannot give."""


def _no_passphrase():
    raise _EncryptedKey()


def check_tls(tls, filename):
    """Each TLS file is readable PEM and loads as paho will load it (ssl, no passphrase)."""
    for key in ("ca_file", "cert_file", "key_file"):
        if getattr(tls, key) is not None:
            _pem_file(filename, f"mqtt.tls.{key}", getattr(tls, key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.ca_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise config_error(filename, "mqtt.tls.ca_file", f"{tls.ca_file} holds no usable CA "
                               f"certificate ({exc}): give the PEM certificate of the CA that "
                               "signed the broker's certificate") from None
    if tls.cert_file is not None:
        key = "mqtt.tls.key_file" if tls.key_file else "mqtt.tls.cert_file"
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_passphrase)
        except _EncryptedKey:
            raise config_error(filename, key, f"{tls.key_file or tls.cert_file}: the private key "
                               "is encrypted and the service cannot give its passphrase: store "
                               "it unencrypted (`openssl pkey -in KEY -out KEY.plain`), readable "
                               "only by the service user") from None
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise config_error(filename, key, f"the client certificate {tls.cert_file} and key "
                               f"{tls.key_file or '(in cert_file)'} do not load ({exc}): give a "
                               "PEM certificate and its own private key") from None


def check_http(config, filename):
    """The HTTP view listens beyond loopback only behind a token, and a token is long enough."""
    from edge.service.http_view import MIN_TOKEN_LENGTH, is_loopback, parse_listen, read_token

    http = config.http
    if not http.enabled:
        return
    host, _ = parse_listen(http.listen)
    token = read_token(http)
    where = (f"environment variable {http.token_env} or systemd credential "
             f"{http.token_credential}")
    if token is None and not is_loopback(host):
        raise config_error(filename, "http.listen", f"{http.listen} is reachable beyond this "
                           f"device but no token is set ({where}): set one (e.g. `openssl rand "
                           "-hex 16`), or listen on 127.0.0.1")
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise config_error(filename, "http.token_env", f"the HTTP token ({where}) has "
                           f"{len(token)} characters; use at least {MIN_TOKEN_LENGTH} (e.g. "
                           "`openssl rand -hex 16`)")


def check_snapshots(config, filename):
    """When snapshots are kept, their folder exists or can be created, and is writable."""
    snapshots = config.snapshots
    if not (snapshots.enabled and snapshots.keep):
        return
    folder = snapshots.folder
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise config_error(filename, "snapshots.folder", f"{folder} is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise config_error(filename, "snapshots.folder", f"{folder} cannot be created "
                           f"({exc.strerror or exc}): create it for the service user, or set "
                           "snapshots.keep: false") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise config_error(filename, "snapshots.folder", f"{folder} is not writable: give the "
                           "service user write access, or set snapshots.keep: false")


def check_outbox(config, filename):
    """The outbox's folder exists or can be created, and is writable (":memory:" needs nothing)."""
    from edge.service.outbox import check_outbox_path

    try:
        check_outbox_path(config.mqtt.outbox_path)
    except ConfigError as exc:
        raise config_error(filename, "mqtt.outbox_path", str(exc)) from None
    except (OSError, ValueError) as exc:
        raise config_error(filename, "mqtt.outbox_path", f"{config.mqtt.outbox_path}: {exc}") from None


def _readable_file(filename, key, path, what):
    if os.path.isdir(path):
        raise config_error(filename, key, f"{what} {path} is a folder, not a file")
    if not os.path.isfile(path):
        raise config_error(filename, key, f"{what} {path} does not exist")
    if not os.access(path, os.R_OK):
        raise config_error(filename, key, f"{what} {path} is not readable by this user: give the "
                           "service user read access")


def _require_edgetpu_twin(config, filename, model_path, key):
    """With `mode: edgetpu` and `require: true`, `run` fails at start without the Edge TPU build."""
    from edge.inference.accelerator import edgetpu_twin

    accelerator = config.accelerator
    if accelerator.mode != "edgetpu" or not accelerator.require or not model_path.endswith(".tflite"):
        return
    twin = edgetpu_twin(model_path)
    if not os.path.isfile(twin):
        raise config_error(filename, "accelerator.require", f"the Edge TPU is required but the "
                           f"{key} has no Edge TPU build {twin}: compile it (`maskdet-convert "
                           "compile`), or set accelerator.require: false")


def check_classifier(config, filename, accelerator):
    """Open the classifier on the CPU (metadata, sha256, input size, labels) and run it once."""
    import numpy as np

    from edge.inference.classifier import MaskClassifier
    from edge.inference.model_meta import load_classifier_meta

    key = "classifier.model"
    meta_path = config.classifier.model or default_classifier()
    try:
        meta = load_classifier_meta(meta_path)
        _readable_file(filename, key, meta.model_path, f"the model file of {meta.path}:")
        if meta.second_opinion is not None:
            _readable_file(filename, key, meta.second_model_path,
                           f"the second opinion's model file of {meta.path}:")
        classifier = MaskClassifier.open(meta_path, accelerator)
        classifier.no_mask_probability(np.zeros((meta.input_size, meta.input_size, 3), np.uint8))
    except ConfigError:
        raise
    except MaskdetError as exc:
        raise config_error(filename, key, exc) from None
    except Exception as exc:  # whatever a runtime raises for a model it cannot run
        raise config_error(filename, key, f"{meta_path}: the classifier cannot run "
                           f"({type(exc).__name__}: {exc})") from None
    _require_edgetpu_twin(config, filename, meta.model_path, "classifier model")


def check_detector(config, filename, accelerator):
    """Resolve the detector's files as `run` does, open it on the CPU and run it on a blank frame
    (OpenCV's process-wide thread count is put back afterwards: the daemon checks at reload)."""
    import cv2
    import numpy as np

    from edge.inference.detectors import create_detector, default_model_key, detector_type
    from edge.inference.fetch import resolve

    key = "detector.model"
    settings = config.detector
    kind = detector_type(settings.type)
    for extra in kind.extra_models:
        try:
            resolve(extra)
        except MaskdetError as exc:
            raise config_error(filename, "detector.type", f"{kind.name} also needs {extra}: {exc}") from None
    model = settings.model or default_model_key(settings)
    if not model:
        raise config_error(filename, key, f"detector type {kind.name} has no default model: give "
                           "its file in detector.model")
    try:
        path = resolve(model)
    except MaskdetError as exc:
        raise config_error(filename, key, exc) from None
    _readable_file(filename, key, path, "the detector model")
    threads = cv2.getNumThreads()  # create_detector sets OpenCV's process-wide thread count
    try:
        detector = create_detector(settings, accelerator)
        detector.detect(np.zeros(BLANK_FRAME, np.uint8))
    except ConfigError as exc:  # e.g. detector.engine onnxruntime when it is not installed
        raise config_error(filename, "detector", exc) from None
    except MaskdetError as exc:
        raise config_error(filename, key, exc) from None
    except Exception as exc:  # whatever OpenCV or a runtime raises for a model it cannot run
        raise config_error(filename, key, f"{path}: the {kind.name} detector cannot run on it "
                           f"({type(exc).__name__}: {exc})") from None
    finally:  # a check at reload must not slow down the daemon that goes on running
        cv2.setNumThreads(threads)
    _require_edgetpu_twin(config, filename, path, "detector model")


def check_models(config, filename):
    """The classifier and the detector open and run, on the CPU (never the Edge TPU here)."""
    from edge.inference.accelerator import AcceleratorSettings

    accelerator = AcceleratorSettings(mode="cpu", threads=1)
    check_classifier(config, filename, accelerator)
    check_detector(config, filename, accelerator)


CHECKS = (check_names, check_gpio, check_accelerator, check_mqtt, check_http, check_outbox,
          check_snapshots, check_models)


def check_loaded(config, filename):
    """Every start check on a config already loaded from `filename`; raises ConfigError."""
    for check in CHECKS:
        check(config, filename)
    return config


def check_config(path):
    """Load a config and check what `run` needs at start; returns the config or raises
    ConfigError (one line, starting with the file name)."""
    return check_loaded(load_config(path), os.fspath(path))
