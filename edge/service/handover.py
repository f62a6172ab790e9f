"""What a Daemon built by a reload takes over from the one it replaces: the MQTT connection when
its settings are unchanged (no `offline` / `online` at a reload), the lights when the gpio section
is, each camera whose source is the same (no reopen, no gap), and each camera's people in view, so
a person decided before the reload is not announced again; also the HTTP view (when its settings
and token are unchanged), the cameras' mute / pause flags, the metrics and the health reader."""
import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from edge.service.commands import Controls
from edge.service.health import HealthReader
from edge.service.http_view import HttpView, read_token
from edge.service.metrics import Metrics
from edge.service.publisher import Publisher


def http_token(config):
    """The HTTP view's token for this config (None when the view is off)."""
    return read_token(config.http) if config.http.enabled else None


def _connection_settings(config):
    """What the MQTT connection depends on: the mqtt section (less the stats period, which only
    the frame loop reads) and the device id (topics, client id)."""
    return dataclasses.replace(config.mqtt, stats_interval_s=0), config.device_id


@dataclass
class Handover:
    """What a Daemon built by a reload takes over from the one it replaces."""

    publisher: Optional[Publisher] = None
    indicator: object = None
    workers: dict = field(default_factory=dict)  # camera name -> running CameraWorker
    views: dict = field(default_factory=dict)  # camera name -> PeopleInView
    started_at: Optional[float] = None
    http: Optional[HttpView] = None
    controls: Optional[Controls] = None
    metrics: Optional[Metrics] = None
    health: Optional[HealthReader] = None


def handover(predecessor, config):
    """What of `predecessor` a Daemon for `config` keeps: the publisher (and its connection) when
    the connection settings are unchanged, the indicator when the gpio section is, the camera
    worker of each camera whose name and source are unchanged, the people in view of each
    camera whose name still exists, the HTTP view when its settings, the privacy settings and
    the token are unchanged, and always the mute / pause flags, the metrics and the health
    reader."""
    if predecessor is None:
        return Handover()
    old = predecessor.config
    sources = {c.name: c.source for c in old.cameras}
    http = predecessor.http
    if http is not None and (old.http != config.http or old.privacy != config.privacy or
                             http.token != http_token(config)):
        http = None
    return Handover(
        http=http, controls=predecessor.controls, metrics=predecessor.metrics,
        health=predecessor.health,
        publisher=predecessor.publisher
        if _connection_settings(old) == _connection_settings(config) else None,
        indicator=predecessor.indicator if old.gpio == config.gpio else None,
        workers={c.name: predecessor.workers[c.name] for c in config.cameras
                 if sources.get(c.name) == c.source},
        views={c.name: predecessor.views[c.name] for c in config.cameras if c.name in sources},
        started_at=predecessor.started_at)


def use_settings(view, settings):
    """Let a carried-over camera's people follow reloaded decision settings: the tracks and each
    person's decision are kept (so nobody decided is announced again); matching, the thresholds,
    the minimum frames and the alert delay apply from the next frame. Every decision setting
    carries over this way: none of them changes what a decision already made means."""
    if view.settings == settings:
        return
    view.settings = settings
    view.tracker.iou_threshold = settings.track_iou
    view.tracker.max_misses = settings.max_missed_frames


