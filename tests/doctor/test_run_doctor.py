"""`run_doctor` on a temporary tree standing for a Raspberry Pi with a USB Coral plugged in and set
up (sysfs ids, the udev rule, the service user in plugdev, the installed unit naming the models
folder), the stand-in libedgetpu answering, a real broker and an image folder as the camera."""
import io
import json
import os
import shutil

import cv2
import numpy as np

from edge.doctor import run_doctor
from edge.inference.runtime import find_runtime
from tests.conftest import copy_shipped_classifier


def put(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def pi_root(root, runtime):
    """The files the doctor reads on a Pi whose Coral was set up by install.sh --coral."""
    models = root / "opt" / "maskdet" / "models"
    copy_shipped_classifier(models)
    # An Edge TPU build as the compiler leaves it (its custom op named inside); the stand-in's
    # delegate claims no node, so the worker runs it on the CPU kernels.
    (models / "mask_classifier_int8_edgetpu.tflite").write_bytes(
        (models / "mask_classifier_int8.tflite").read_bytes() + b"edgetpu-custom-op")
    put(root / "etc/systemd/system/maskdet.service",
        f"[Service]\nEnvironment=MASKDET_MODELS={models}\nEnvironment=PYTHONUNBUFFERED=1\n")
    put(root / "etc/systemd/system/maskdet.service.d/coral.conf",
        f"[Service]\nEnvironment=MASKDET_RUNTIME={runtime}\n")
    for name, text in (("idVendor", "18d1"), ("idProduct", "9302"), ("speed", "5000")):
        put(root / "sys/bus/usb/devices/2-1" / name, text + "\n")
    put(root / "etc/udev/rules.d/65-maskdet-edgetpu.rules",
        'SUBSYSTEM=="usb", ATTRS{idVendor}=="1a6e", ATTRS{idProduct}=="089a", MODE="0660", GROUP="plugdev"\n'
        'SUBSYSTEM=="usb", ATTRS{idVendor}=="18d1", ATTRS{idProduct}=="9302", MODE="0660", GROUP="plugdev"\n')
    put(root / "etc/passwd", "maskdet:x:998:998::/var/lib/maskdet:/usr/sbin/nologin\n")
    put(root / "etc/group", "maskdet:x:998:\nplugdev:x:46:maskdet\nvideo:x:44:maskdet\n")
    put(root / "sys/class/thermal/thermal_zone0/temp", "51234\n")
    put(root / "sys/devices/platform/soc/soc:firmware/get_throttled", "0\n")
    return models


def test_a_pi_with_its_coral_set_up(tmp_path, stand_in, broker, write_config, monkeypatch):
    runtime = find_runtime().name
    for name in ("MASKDET_MODELS", "MASKDET_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    environ_before = dict(os.environ)
    root = tmp_path / "root"
    models = pi_root(root, runtime)
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "door.jpg"), np.zeros((360, 640, 3), np.uint8))
    config = write_config(
        f"cameras: [{{name: door, source: {{type: folder, path: {frames}}}}}]\n"
        f"mqtt: {{host: {broker.host}, port: {broker.port}, outbox_path: {tmp_path / 'state' / 'outbox.db'}}}\n")
    (tmp_path / "state").mkdir()
    out = io.StringIO()
    status = run_doctor(config, out=out, as_json=True, root=str(root), timeout=10)
    found = {f["check"]: f for f in map(json.loads, out.getvalue().splitlines())}

    # The service's models folder, taken from its unit.
    assert f"as the service: MASKDET_MODELS={models} from /etc/systemd/system/maskdet.service" \
        in found["config"]["detail"]
    assert "(chosen by /etc/systemd/system/maskdet.service.d/coral.conf)" in found["runtime"]["detail"]
    for name in ("config", "runtime", "edgetpu device", "udev rule", "groups", "edgetpu probe",
                 "classifier model", "camera door", "gpio", "broker", "outbox", "temperature"):
        assert found[name]["status"] == "ok", found[name]
    assert "USB Coral at 2-1 (18d1:9302" in found["edgetpu device"]["detail"]
    assert "maskdet is in plugdev" in found["groups"]["detail"]
    assert found["edgetpu probe"]["data"]["model"] == str(models / "mask_classifier_int8_edgetpu.tflite")
    assert "Edge TPU build mask_classifier_int8_edgetpu.tflite" in found["classifier model"]["detail"]
    # The stand-in is no package: its build, and so the pair, cannot be vouched for; and no
    # libedgetpu is built for ai-edge-litert at all.
    assert found["libedgetpu"]["status"] == "warn"
    assert found["edgetpu pair"]["status"] == ("fail" if runtime == "ai_edge_litert" else "warn")
    if not shutil.which("vcgencmd"):
        assert found["throttling"]["status"] == "ok"
    assert status == (1 if any(f["status"] == "fail" for f in found.values()) else 0)
    assert stand_in.calls(), "the probe loaded the (stand-in) delegate"
    assert dict(os.environ) == environ_before  # the unit's variables were for the doctor only
