"""Commands from the network, on `<prefix>/<device_id>/<camera>/set` (Home Assistant's switches
send them): `{"mute": true|false}` mutes that camera's buzzer (the red light still shows its
alerts), `{"pause": true|false}` pauses its detection (no decisions, no alert, no live frames).

Everything that arrives is hostile until proven otherwise: a command is at most
MAX_COMMAND_BYTES of UTF-8 JSON, an object whose keys are known commands and whose values are
booleans, for a configured camera, and not retained (a stale retained `pause` must never leave a
door unwatched after a restart). Anything else is counted, logged (at most once a minute per
reason, so a flood cannot fill the journal) and ignored; nothing raises into paho's thread.
Commands are not persisted: a restart starts unmuted and watching.
"""
import json
import logging
import threading
import time

from edge.errors import DataError

log = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 256
COMMANDS = ("mute", "pause")
LOG_EVERY_S = 60.0


class CommandError(DataError):
    """A message on a command topic that is not a valid command; `reason` is a short key for
    counting (`too_large`, `not_json` ...)."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def _refuse_constant(name):
    raise ValueError(f"{name} is not allowed")


def parse_command(topic, payload, base, cameras):
    """(camera, {command: bool}) of a valid command message, else CommandError."""
    head, tail = f"{base}/", "/set"
    if not (isinstance(topic, str) and topic.startswith(head) and topic.endswith(tail)):
        raise CommandError("wrong_topic", f"not a command topic: {str(topic)[:100]!r}")
    camera = topic[len(head):-len(tail)]
    if camera not in cameras:
        raise CommandError("unknown_camera", f"no camera {camera[:64]!r} here (cameras: "
                           f"{', '.join(cameras)})")
    if not isinstance(payload, (bytes, bytearray)):
        raise CommandError("not_bytes", "the payload is not bytes")
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandError("too_large", f"{len(payload)} bytes, more than {MAX_COMMAND_BYTES}")
    try:
        data = json.loads(bytes(payload).decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise CommandError("not_utf8", "the payload is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise CommandError("not_json", f"the payload is not JSON ({str(exc)[:80]})") from None
    if not isinstance(data, dict) or not data:
        raise CommandError("not_an_object", 'a command is a JSON object such as {"mute": true}')
    unknown = [key for key in data if key not in COMMANDS]
    if unknown:
        raise CommandError("unknown_command", f"unknown command {str(unknown[0])[:40]!r}; "
                           f"known: {', '.join(COMMANDS)}")
    wrong = [key for key, value in data.items() if not isinstance(value, bool)]
    if wrong:
        raise CommandError("not_a_boolean", f"{wrong[0]} takes true or false, not "
                           f"{type(data[wrong[0]]).__name__}")
    return camera, dict(data)


class Controls:
    """Each camera's `muted` and `paused` flags: set by the MQTT thread, read by the frame loop
    (plain booleans; a reload keeps them)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._flags = {}  # camera -> {"mute": bool, "pause": bool}

    def apply(self, camera, changes):
        """Set a camera's flags; returns the ones that changed."""
        with self._lock:
            flags = self._flags.setdefault(camera, {"mute": False, "pause": False})
            changed = {k: v for k, v in changes.items() if flags[k] != v}
            flags.update(changes)
            return changed

    def muted(self, camera):
        """True while the camera's buzzer is muted."""
        return self._flags.get(camera, {}).get("mute", False)

    def paused(self, camera):
        """True while the camera's detection is paused."""
        return self._flags.get(camera, {}).get("pause", False)


class CommandHandler:
    """What the publisher calls for each message on a command topic. Never raises."""

    def __init__(self, base, cameras, controls, metrics=None, clock=time.monotonic):
        self.base = base
        self.cameras = list(cameras)
        self.controls = controls
        self.metrics = metrics
        self.clock = clock
        self._logged = {}  # reason -> (last time logged, suppressed since)

    def __call__(self, topic, payload, retained=False):
        try:
            self._handle(topic, payload, retained)
        except Exception:  # a bug must never reach paho's thread
            log.exception("command on %s: unexpected error", str(topic)[:100])

    def _handle(self, topic, payload, retained):
        try:
            if retained:
                raise CommandError("retained", "retained commands are ignored (a stale one "
                                   "could pause a door after a restart): publish without retain")
            camera, changes = parse_command(topic, payload, self.base, self.cameras)
        except CommandError as exc:
            self._count(f"rejected_{exc.reason}")
            self._refused(exc.reason, topic, exc)
            return
        self._count("accepted")
        changed = self.controls.apply(camera, changes)
        if changed:
            log.info("camera %s: %s (command on %s)", camera,
                     ", ".join(f"{k} {'on' if v else 'off'}" for k, v in changed.items()), topic)

    def _count(self, result):
        if self.metrics is not None:
            self.metrics.count_command(result)

    def _refused(self, reason, topic, exc):
        """WARNING at most once a minute per reason (with how many were not logged), else DEBUG."""
        now = self.clock()
        last, suppressed = self._logged.get(reason, (None, 0))
        if last is not None and now - last < LOG_EVERY_S:
            self._logged[reason] = (last, suppressed + 1)
            log.debug("command on %s ignored: %s", str(topic)[:100], exc)
            return
        more = f" ({suppressed} more like it not logged)" if suppressed else ""
        log.warning("command on %s ignored: %s%s", str(topic)[:100], exc, more)
        self._logged[reason] = (now, 0)
