"""The daemon's configuration (`/etc/maskdet/config.yaml`): every section, key, default and check.

`systemd/maskdet.example.yaml` documents the same keys for people; `load_config` reads a file
strictly (unknown keys, wrong types and bad values name the key path and the line).
"""
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Optional

from edge.config.loader import load_yaml
from edge.config.mqtt import (  # noqa: F401  (the mqtt section's classes are part of the schema)
    HomeAssistantConfig, MqttConfig, TlsConfig, file_path, topic_level)
from edge.errors import ConfigError
from edge.paths import DEFAULT_CONFIG
from edge.inference.accelerator import AcceleratorSettings
from edge.inference.detectors import DetectorSettings
from edge.inference.geometry import polygon_problem
from edge.inference.pipeline import ClassifierSettings
from edge.service.decision import DecisionSettings
from edge.service.indicator import pin_conflicts, pin_problem
from edge.settings import in_range, one_of

DEFAULT_PATH = DEFAULT_CONFIG


def _help(text, check=None, **extra):
    return dict({"help": text, "check": check} if check else {"help": text}, **extra)


def listen_address(value):
    """A check for http.listen: `HOST:PORT` with an IP address (or `localhost`) and a port;
    IPv6 in brackets (`[::1]:8080`)."""
    from edge.service.http_view import parse_listen

    try:
        parse_listen(value)
    except ValueError as exc:
        return str(exc)
    return None


def camera_name(value):
    """A check for a camera name (a topic level, a log field): letters, digits, - and _."""
    if value and all(c.isalnum() or c in "-_" for c in value):
        return None
    return "use letters, digits, - and _ only"


def ignore_regions_problem(regions):
    """A check for a camera's ignore_regions: each region at least 3 points [x, y], each x and y a
    fraction of the frame (0..1), and an area (not every point on one line); the problem names
    the region's index and the point, or None."""
    for r, region in enumerate(regions):
        for i, point in enumerate(region):
            if len(point) == 2 and any(isinstance(v, (int, float)) and not 0.0 <= v <= 1.0
                                       for v in point):
                return (f"ignore_regions[{r}] point {i} {list(point)}: x and y are fractions of "
                        "the frame's width and height, between 0 and 1 (divide a snapshot's "
                        "pixels by its width and height)")
        problem = polygon_problem(region)
        if problem:
            return f"ignore_regions[{r}] {problem}"
    return None


@dataclass(frozen=True)
class SourceConfig:
    """Where a camera's frames come from."""

    type: str = field(metadata=_help("picamera2, opencv or folder", one_of("picamera2", "opencv", "folder")))
    url: Optional[str] = field(default=None, metadata=_help(
        "opencv: /dev/videoN, a device number, an rtsp:// or http:// URL, or a video file",
        file_path, accept_int=True))
    path: Optional[str] = field(default=None, metadata=_help("folder: a folder of images", file_path))
    camera_index: int = field(default=0, metadata=_help("picamera2: which camera", in_range(0, 8)))
    width: int = field(default=1280, metadata=_help("capture width", in_range(64, 8192)))
    height: int = field(default=720, metadata=_help("capture height", in_range(64, 8192)))
    lores_width: int = field(default=640, metadata=_help("picamera2: inference stream width", in_range(64, 4096)))
    lores_height: int = field(default=360, metadata=_help("picamera2: inference stream height", in_range(64, 4096)))
    fps: float = field(default=15.0, metadata=_help("frames per second asked of the camera; files and "
                                                     "folders are paced at it when realtime", in_range(0.1, 120)))
    loop: bool = field(default=False, metadata=_help("files and folders: start again at the end"))
    realtime: bool = field(default=True, metadata=_help("files and folders: deliver at fps, not as fast as read"))

    def __post_init__(self):
        if self.type == "opencv" and self.url is None:
            raise ValueError("source type opencv needs 'url'")
        if self.type == "folder" and self.path is None:
            raise ValueError("source type folder needs 'path'")


@dataclass(frozen=True)
class CameraConfig:
    """One camera."""

    name: str = field(metadata=_help("its name in topics and logs (letters, digits, - and _)",
                                     camera_name))
    source: SourceConfig = field(metadata=_help("where frames come from"))
    ignore_regions: list[list[list[float]]] = field(default_factory=list, metadata=_help(
        "polygons where a face is not a person (a poster, a screen): faces whose box centre lies "
        "in one are ignored; each a list of at least 3 [x, y] points, x and y fractions (0..1) "
        "of the frame's width and height"))

    def __post_init__(self):
        problem = ignore_regions_problem(self.ignore_regions)
        if problem:
            raise ValueError(f"camera {self.name!r}: {problem}")


@dataclass(frozen=True)
class PinConfig:
    """One GPIO output."""

    pin: Any = field(metadata=_help("GPIO pin: a BCM number (17) or a gpiozero name: GPIO17, BCM17, "
                                    "BOARD11 or J8:11 (physical pin 11), WPI0", pin_problem))
    active_high: bool = field(default=True, metadata=_help("false when the pin sinks the current"))


@dataclass(frozen=True)
class BuzzerConfig(PinConfig):
    """The buzzer and its pattern."""

    on_s: float = field(default=0.15, metadata=_help("beep length", in_range(0.01, 5)))
    off_s: float = field(default=0.1, metadata=_help("pause between beeps", in_range(0.01, 5)))
    beeps: int = field(default=3, metadata=_help("beeps when an alert starts", in_range(1, 20)))


@dataclass(frozen=True)
class GpioConfig:
    """The entrance indicator; any of the three may be left out."""

    green: Optional[PinConfig] = field(default=None, metadata=_help("on while the view is clear"))
    red: Optional[PinConfig] = field(default=None, metadata=_help("on during an alert"))
    buzzer: Optional[BuzzerConfig] = field(default=None, metadata=_help("beeps when an alert starts"))
    cooldown_s: float = field(default=10.0, metadata=_help("at most one buzz per this many seconds", in_range(0, 3600)))

    def __post_init__(self):
        problem = pin_conflicts({"green": self.green, "red": self.red, "buzzer": self.buzzer})
        if problem:
            raise ValueError(problem)


@dataclass(frozen=True)
class HttpConfig:
    """The optional HTTP view: live view, snapshots, /api/state and /metrics."""

    enabled: bool = field(default=False, metadata=_help("serve the page, the live view, /api/state and /metrics"))
    listen: str = field(default="127.0.0.1:8080", metadata=_help(
        "address and port (HOST:PORT, [IPv6]:PORT); beyond loopback (0.0.0.0, a LAN address) a "
        "token is required", listen_address))
    token_env: str = field(default="MASKDET_HTTP_TOKEN", metadata=_help(
        "environment variable holding the access token"))
    token_credential: str = field(default="http-token", metadata=_help(
        "systemd credential name holding the token ($CREDENTIALS_DIRECTORY/<name>)"))
    max_fps: float = field(default=5.0, metadata=_help("frames per second of the live view, at most",
                                                        in_range(0.2, 30)))
    max_viewers: int = field(default=4, metadata=_help("live views at once, at most", in_range(1, 32)))
    max_width: int = field(default=960, metadata=_help("live frames wider than this are shrunk; 0: never",
                                                        in_range(0, 8192)))
    jpeg_quality: int = field(default=70, metadata=_help("JPEG quality of the live view", in_range(10, 95)))


@dataclass(frozen=True)
class PrivacyConfig:
    """What pictures show of people."""

    blur_faces: bool = field(default=True, metadata=_help(
        "pixelate every detected face in the live view and in snapshots"))


@dataclass(frozen=True)
class SnapshotConfig:
    """A JPEG of each decided person (off by default)."""

    enabled: bool = field(default=False, metadata=_help("take a snapshot at each mask / no_mask decision"))
    crop: str = field(default="face", metadata=_help("face: the face with a margin; frame: the whole frame",
                                                     one_of("face", "frame")))
    margin: float = field(default=0.5, metadata=_help(
        "face: the box widened by this much of its size on each side", in_range(0, 3)))
    unmasked_only: bool = field(default=False, metadata=_help("only no_mask decisions"))
    publish: bool = field(default=True, metadata=_help("publish retained on <prefix>/<device_id>/<camera>/snapshot"))
    keep: bool = field(default=False, metadata=_help("also keep them as files in `folder`"))
    folder: str = field(default="/var/lib/maskdet/snapshots", metadata=_help(
        "where kept snapshots go (created when missing)", file_path))
    max_files: int = field(default=500, metadata=_help("the oldest files beyond this are deleted",
                                                       in_range(1, 1_000_000)))
    max_age_h: float = field(default=72.0, metadata=_help("files older than this many hours are deleted",
                                                          in_range(0.01, 87600)))
    max_width: int = field(default=1280, metadata=_help("snapshots wider than this are shrunk; 0: never",
                                                        in_range(0, 8192)))
    jpeg_quality: int = field(default=85, metadata=_help("JPEG quality", in_range(10, 95)))


@dataclass(frozen=True)
class Config:
    """The whole daemon configuration."""

    cameras: list[CameraConfig] = field(metadata=_help("one or more cameras"))
    device_id: str = field(default_factory=socket.gethostname, metadata=_help(
        "this device in topics (one topic level: no /, + or #)", topic_level))
    detector: DetectorSettings = field(default_factory=DetectorSettings, metadata=_help("face detector"))
    classifier: ClassifierSettings = field(default_factory=ClassifierSettings, metadata=_help("mask classifier"))
    accelerator: AcceleratorSettings = field(default_factory=AcceleratorSettings, metadata=_help("Edge TPU and CPU threads"))
    decision: DecisionSettings = field(default_factory=DecisionSettings, metadata=_help("decisions"))
    gpio: GpioConfig = field(default_factory=GpioConfig, metadata=_help("lights and buzzer"))
    mqtt: MqttConfig = field(default_factory=MqttConfig, metadata=_help("broker"))
    http: HttpConfig = field(default_factory=HttpConfig, metadata=_help("the HTTP view (off by default)"))
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig, metadata=_help("faces in pictures"))
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig, metadata=_help(
        "event snapshots (off by default)"))
    log_level: str = field(default="INFO", metadata=_help("DEBUG, INFO, WARNING or ERROR",
                                                         one_of("DEBUG", "INFO", "WARNING", "ERROR")))

    def __post_init__(self):
        if not self.cameras:
            raise ValueError("at least one camera is needed under 'cameras'")
        names = [c.name for c in self.cameras]
        if len(names) != len(set(names)):
            raise ValueError(f"camera names must differ, got {names}")
        # Home Assistant ids turn '-' into '_' (and ignore case): front-door and front_door
        # would be one entity there.
        ids = [n.replace("-", "_").lower() for n in names]
        if len(ids) != len(set(ids)):
            raise ValueError(f"camera names must differ by more than '-' / '_' and case (Home "
                             f"Assistant would see one camera), got {names}")


def load_config(path=DEFAULT_PATH):
    """Read and validate a config file; ConfigError (exit 78) names the file, the key path and
    the line (or, for a file that is not UTF-8, the byte)."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")  # a UTF-8 byte order mark is harmless
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{name}: not UTF-8 text: byte 0x{data[exc.start]:02x} at position "
                          f"{exc.start} (line {line}) ({exc.reason}); save the file as UTF-8") from None
    return load_yaml(Config, text, name)
