"""`maskdet run` as a process: the signals, one stop request and one reload request for the whole
process (never tied to a Daemon, so a SIGTERM in the middle of a reload is not lost), the start
and the reloads. While it starts or reloads, a heartbeat thread feeds the watchdog.

A reload (SIGHUP) builds the new Daemon while the running one waits, and swaps only once the new
one is built; a config that is invalid or cannot be built is refused and the running one goes on.
What the new Daemon takes over from the running one is decided in `handover.py`.
"""
import contextlib
import logging
import signal
import threading

from edge.config.checks import check_config
from edge.errors import ConfigError, FetchError, MaskdetError, ModelError
from edge.service.daemon import Daemon
from edge.systemd_notify import Heartbeat, monotonic_usec, notify

log = logging.getLogger(__name__)


def _one_line(exc):
    return " ".join(str(exc).split())


class _Held(logging.Handler):
    """Keeps records instead of writing them (see `held_logs`)."""

    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def held_logs():
    """Hold the log records made inside the block (the models being built at start): written when
    the block succeeds, dropped when it raises, so that a start that fails says why in the one
    line the command line prints."""
    root = logging.getLogger()
    saved, held = root.handlers[:], _Held()
    root.handlers = [held]
    try:
        yield
    finally:
        root.handlers = saved
    for record in held.records:
        root.handle(record)


class Service:
    """`maskdet run`: the config file, the process-wide stop and reload requests, and the running
    Daemon, replaced at each reload."""

    def __init__(self, config_path, pin_factory=None):
        self.config_path = config_path
        self.pin_factory = pin_factory
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.daemon = None

    def signal_handlers(self):
        """{signal: handler}: SIGTERM and SIGINT request a stop, SIGHUP a reload."""
        return {signal.SIGTERM: lambda *_: self.stop.set(),
                signal.SIGINT: lambda *_: self.stop.set(),
                signal.SIGHUP: lambda *_: self.reload.set()}

    def run(self):
        """Start, then run the frame loop until a stop (or until every file source has ended),
        reloading on request; returns the exit status. The daemon is shut down however this
        ends (lights off, final states, `offline`)."""
        try:
            self._start()
            while not self.stop.is_set():
                self.daemon.run()
                if self.stop.is_set() or not self.reload.is_set():
                    break
                self._reload()
            return 0
        finally:
            if self.daemon is not None:
                self.daemon.shutdown()

    def _start(self):
        """Check the config, build the Daemon and start it, feeding the watchdog meanwhile."""
        with Heartbeat():
            config = check_config(self.config_path)
            logging.getLogger().setLevel(config.log_level)
            with held_logs():
                self.daemon = self._build_at_start(config)
            if not self.stop.is_set():
                self.daemon.start()

    def _build_at_start(self, config):
        """The first Daemon; a model the config names that cannot be built is a ConfigError
        (exit 78: the config points at a bad file, restarting will not help)."""
        try:
            return self._daemon(config)
        except (ModelError, FetchError) as exc:
            raise ConfigError(f"{self.config_path}: {_one_line(exc)}") from exc

    def _daemon(self, config, predecessor=None):
        return Daemon(config, self.pin_factory, stop=self.stop, reload=self.reload,
                      predecessor=predecessor)

    def _reload(self):
        """SIGHUP: RELOADING=1, build the new Daemon, swap, READY=1; a config that is invalid or
        cannot be built keeps the running one. A stop requested meanwhile ends the reload."""
        self.reload.clear()
        notify(f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec()}\nSTATUS=reloading")
        log.info("reloading the configuration from %s", self.config_path)
        with Heartbeat():
            successor = self._build_successor()
            if self.stop.is_set():
                if successor is not None:
                    successor.discard()
                return
            if successor is None:
                notify("READY=1\nSTATUS=watching " + ", ".join(self.daemon.workers))
                return
            self.daemon.hand_over(successor)
            self.daemon = successor
            logging.getLogger().setLevel(successor.config.log_level)
            log.info("configuration reloaded from %s", self.config_path)
            self._start_reloaded(successor)

    @staticmethod
    def _start_reloaded(successor):
        """Start the Daemon a reload built. The running one has handed over already, so there is
        no way back: a part that fails to start (the lights, the warm-up inference) is logged
        and the frame loop runs without it rather than the service dying."""
        try:
            successor.start()
        except Exception as exc:  # noqa: BLE001 - whatever it is, the door must keep its loop
            log.error("the reloaded configuration did not start completely (%s); watching on "
                      "with what did start: fix the config and reload again", _one_line(exc),
                      exc_info=not isinstance(exc, MaskdetError))
            notify("READY=1\nSTATUS=watching (degraded: see the log)")

    def _build_successor(self):
        """The Daemon for the reloaded config, or None (logged) when it is refused."""
        try:
            config = check_config(self.config_path)
            if self.stop.is_set():
                return None
            # One process at a time can hold a USB Coral: the running models step back to the
            # CPU while the new ones open it (and try it again later if the reload fails).
            self.daemon.pipeline.release_edgetpu("released for a reload")
            return self._daemon(config, predecessor=self.daemon)
        except MaskdetError as exc:
            log.error("reload refused, keeping the running configuration: %s", _one_line(exc))
        except Exception:  # a bug in building must not take the door down either
            log.exception("reload refused, keeping the running configuration")
        return None


def run_service(config_path, pin_factory=None):
    """Run `maskdet run` until SIGTERM (or every file source has ended); SIGHUP reloads. Returns
    the exit status; raises ConfigError (exit 78) for a bad config or a model it names that
    cannot be built. The signal handlers in place before are restored at the end."""
    service = Service(config_path, pin_factory)
    previous = {sig: signal.signal(sig, handler) for sig, handler in service.signal_handlers().items()}
    try:
        return service.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
