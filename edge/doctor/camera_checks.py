"""The camera check of `maskdet doctor`: each configured camera's source opens and gives a first
frame within the deadline (tried in a thread: a camera that blocks leaves the doctor's deadline
intact)."""
import contextlib
import os
import threading
import time

from edge.doctor.findings import FAIL, OK, Finding, one_line


def check_camera(camera, timeout=10.0):
    """One camera: its source opens and gives a first frame within `timeout` seconds (in a
    thread: a camera that blocks leaves the doctor's deadline intact)."""
    name = f"camera {camera.name}"
    source_config = camera.source
    where = source_config.url or source_config.path or f"picamera2 {source_config.camera_index}"
    result, seconds = first_frame(source_config, timeout)
    if result is None:
        return Finding(name, FAIL, f"{where}: no frame within {timeout:g} s",
                       "check the camera, its cable or its stream (for RTSP: the address, the "
                       "network, the camera's credentials)")
    if "error" in result:
        detail, fix = _camera_failure(source_config, where, result["error"])
        return Finding(name, FAIL, detail, fix)
    frame = result.get("frame")
    if frame is None:
        return Finding(name, FAIL, f"{where}: opened but gave no frame", "check the source")
    height, width = frame.shape[:2]
    return Finding(name, OK, f"{where}: first frame {width}x{height} in {seconds:.1f} s",
                   data={"width": width, "height": height})


def first_frame(source_config, timeout):
    """Open the source and read one frame, in a thread given `timeout` seconds: ({"frame": ...}
    or {"error": exception}, or None when the thread is still at it; seconds taken)."""
    from edge.service.sources import create_source

    result = {}

    def attempt():
        source = None
        try:
            source = create_source(source_config)
            source.open()
            result["frame"] = source.read()
        except Exception as exc:  # a SourceError, or whatever a capture library raises
            result["error"] = exc
        finally:
            if source is not None:
                with contextlib.suppress(Exception):
                    source.close()

    with _opencv_quiet():
        thread = threading.Thread(target=attempt, name="doctor-camera", daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(timeout)
    seconds = time.monotonic() - started
    return (None if thread.is_alive() else result), seconds


def _camera_failure(source_config, where, exc):
    """(detail, fix) for a camera whose source raised `exc` while opening or reading."""
    detail = f"{where}: {one_line(exc)}"
    fix = "check the device, URL or file in the config"
    if source_config.type == "opencv" and str(source_config.url).startswith("/dev/") and \
            not os.path.exists(source_config.url):
        detail = f"{source_config.url} does not exist: camera not found"
        fix = "plug the camera in; `v4l2-ctl --list-devices` lists the cameras"
    elif source_config.type == "picamera2":
        fix = "on Raspberry Pi OS: sudo apt install python3-picamera2 (the venv is made with " \
              "--system-site-packages); `rpicam-hello --list-cameras` lists the cameras"
    elif not os.path.isabs(where) and source_config.type in ("opencv", "folder") and \
            "://" not in where:
        fix += f" (a relative path is taken from the current folder, {os.getcwd()}; the " \
               "service's is /var/lib/maskdet)"
    return detail, fix


@contextlib.contextmanager
def _opencv_quiet():
    """OpenCV's own warnings (a camera it cannot open) off while a camera is tried."""
    try:
        import cv2

        logging_module = cv2.utils.logging
        previous = logging_module.getLogLevel()
        logging_module.setLogLevel(logging_module.LOG_LEVEL_SILENT)
    except Exception:
        yield
        return
    try:
        yield
    finally:
        logging_module.setLogLevel(previous)
