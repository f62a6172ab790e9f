"""Shared test fixtures: where the shared data is, and skips with a reason when it is absent."""
import importlib.util
import os
import subprocess
import sys

import pytest

from edge.paths import REPO_ROOT, shared_dir


def shared_path(*parts):
    """A path in the shared data, or a skip naming what is missing."""
    path = os.path.join(shared_dir(), *parts)
    if not os.path.exists(path):
        pytest.skip(f"needs {path}: set MASKDET_SHARED to the shared data folder")
    return path


def copy_shipped_classifier(folder):
    """Copy the shipped classifier's metadata and every model file it names (the model and, for
    a pair, its second opinion) into `folder` (made if missing); returns the folder."""
    import json
    import shutil

    os.makedirs(folder, exist_ok=True)
    models = os.path.join(REPO_ROOT, "models")
    with open(os.path.join(models, "mask_classifier.json"), encoding="utf-8") as f:
        files = ("mask_classifier.json",) + tuple(json.load(f)["files"].values())
    for name in files:
        shutil.copy(os.path.join(models, name), os.path.join(folder, name))
    return folder


def damage_last_byte(path):
    """Flip the bits of a file's last byte: the same size, another sha256."""
    with open(path, "r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        last = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([last[0] ^ 0xFF]))


def requires_tensorflow():
    """Skip unless TensorFlow (the convert extra) is installed."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("needs TensorFlow: pip install -e .[convert]")


def run_cli(*args, env=None, timeout=900):
    """Run a console entry point module in a fresh interpreter; returns CompletedProcess."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=REPO_ROOT)


@pytest.fixture
def shared():
    """The shared data folder (skips when absent)."""
    return shared_path()


def Broker(tmp_path, persistence=False, listener_options=(), anonymous=True):
    """A real mosquitto on a free loopback port, which a test may stop and start again."""
    from edge.bench.mosquitto import Mosquitto
    from edge.errors import MaskdetError

    try:
        return Mosquitto(str(tmp_path), persistence, listener_options, anonymous)
    except MaskdetError as exc:
        pytest.skip(f"{exc}; .ci/run installs it")


@pytest.fixture
def broker(tmp_path):
    """A running mosquitto for this test."""
    b = Broker(tmp_path).start()
    yield b
    b.stop()


class Subscriber:
    """A paho client that records what arrives on a topic filter."""

    def __init__(self, broker, topic="#", client_id=None):
        import threading

        import paho.mqtt.client as mqtt

        self.messages = []
        self._cond = threading.Condition()
        # With a client id the session persists (clean_session off): a broker with persistence
        # keeps queuing for it while it is away.
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  clean_session=client_id is None)
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=1)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        # Only once the broker has acknowledged the subscription is anything sure to arrive.
        assert subscribed.wait(10), f"no SUBACK from the broker on port {broker.port}"

    def _on_message(self, client, userdata, message):
        with self._cond:
            self.messages.append((message.topic, message.payload.decode(), message.retain))
            self._cond.notify_all()

    def wait_for(self, predicate, timeout=10.0):
        """Block until predicate(messages) is true; returns the messages."""
        with self._cond:
            self._cond.wait_for(lambda: predicate(self.messages), timeout)
            return list(self.messages)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def annotated_faces(annotations_path, min_side=32):
    """{"mask": n, "no_mask": n} of the annotated faces whose shorter side is at least `min_side`
    px (a mask worn below the nose is no mask): what an evaluation on that file must count."""
    import json

    with open(annotations_path, encoding="utf-8") as handle:
        entries = json.load(handle)
    counts = {"mask": 0, "no_mask": 0}
    for entry in entries:
        for face in entry["faces"]:
            x1, y1, x2, y2 = face["box"]
            if min(x2 - x1, y2 - y1) >= min_side:
                counts["mask" if face["label"] == "with_mask" else "no_mask"] += 1
    return counts
