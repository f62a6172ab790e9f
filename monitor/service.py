"""`maskdet monitor`: the service. It checks its config (ConfigError, exit 78), opens and migrates
the database, starts the web server, then the MQTT session, and tells systemd READY. The watchdog
is pinged only while the writer thread shows signs of life (a database call that hangs gets the
service restarted); retention runs at start and every hour. SIGTERM stores and acknowledges what
has arrived, leaves the broker (the persistent session stays and keeps queuing) and stops.

Errors at start that are not the config's (the database or the listen port unavailable) exit 1,
and systemd starts the monitor again after RestartSec.
"""
import asyncio
import logging
import os
import signal
import ssl
import time

from edge.errors import MaskdetError
from edge import systemd_notify as systemd
from monitor.auth import Auth
from monitor.config import (check_monitor_config, db_password, describe, http_token, parse_listen,
                            sqlite_folder)
from monitor.ingest import Ingest
from monitor.live import Hub
from monitor.store import DatabaseError, Store

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 3600.0
STATUS_EVERY_S = 15.0


def check(path):
    """`maskdet monitor --check`: the one line about a valid config (ConfigError otherwise)."""
    return f"{path}: valid; {describe(check_monitor_config(path))}"


def run_monitor(path):
    """Run the monitor until SIGTERM or SIGINT; returns the exit status."""
    config = check_monitor_config(path)
    logging.getLogger().setLevel(config.log_level)
    return asyncio.run(Monitor(config).run())


def https_context(http):
    """The TLS context of the web server, or None for plain HTTP."""
    if not http.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(http.tls_cert_file, http.tls_key_file)
    return context


class Monitor:
    """One running monitor: database, web server, MQTT session."""

    def __init__(self, config, environ=os.environ):
        self.config = config
        self.environ = environ
        self.store = self.ingest = self.hub = self.runner = None
        self._stop = None

    async def run(self, handle_signals=True):
        """Start, serve until asked to stop (SIGTERM, SIGINT or `stop()`), stop; returns 0.
        `handle_signals` False leaves the signals alone (a monitor run in a thread)."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, self._stop.set)
        tasks = []
        try:
            await self._start(loop)
            tasks = [asyncio.create_task(self._watchdog()), asyncio.create_task(self._retention())]
            systemd.notify(f"READY=1\nSTATUS={self.status_line()}", self.environ)
            await self._stop.wait()
            log.info("stopping")
            systemd.notify("STOPPING=1", self.environ)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            for task in tasks:
                task.cancel()
            await self._shutdown(loop)
        return 0

    def stop(self):
        """Ask a running monitor to stop (from its loop)."""
        self._stop.set()

    async def _start(self, loop):
        from aiohttp import web

        from monitor.web import make_app

        folder = sqlite_folder(self.config)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self.store = await loop.run_in_executor(None, Store.open, self.config.database,
                                                db_password(self.environ))
        self.hub = Hub(loop)
        self.ingest = Ingest(self.config, self.store, on_stored=self.hub.publish_threadsafe)
        http = self.config.http
        auth = Auth(http_token(self.config, self.environ), http.session_hours, bool(http.tls_cert_file))
        self.runner = web.AppRunner(make_app(self.config, self.store, self.ingest, self.hub, auth),
                                    access_log=None, shutdown_timeout=2.0)
        await self.runner.setup()
        host, port = parse_listen(http.listen)
        try:
            await web.TCPSite(self.runner, host, port, ssl_context=https_context(http)).start()
        except OSError as exc:
            raise MaskdetError(f"http.listen {http.listen}: cannot listen: {exc.strerror or exc}") from None
        scheme = "https" if http.tls_cert_file else "http"
        log.info("dashboard on %s://%s (%s)", scheme, http.listen,
                 "token required" if auth.required else "loopback, no token")
        self.ingest.start()

    async def _shutdown(self, loop):
        if self.hub:
            self.hub.close()
        if self.runner:
            await self.runner.cleanup()
        if self.ingest:
            await loop.run_in_executor(None, self.ingest.stop)
        if self.store:
            self.store.close()

    def status_line(self):
        """One line for `systemctl status`."""
        if self.ingest is None:
            return "starting"
        s = self.ingest.status
        broker = "broker connected" if s.connected else f"broker: {s.broker_problem or 'connecting'}"
        database = f"database error: {s.db_error}" if s.db_error else "database ok"
        return (f"{broker}; {database}; {s.stored_events} events stored, {s.duplicates} duplicates, "
                f"{s.rejected} refused since start")

    async def _watchdog(self):
        interval = systemd.watchdog_interval(self.environ)
        limit = max(2 * interval, 10.0) if interval else None
        last_status, stalled = 0.0, False
        while True:
            now = time.monotonic()
            if interval:
                age = now - self.ingest.heartbeat
                if age < limit:
                    systemd.notify("WATCHDOG=1", self.environ)
                    stalled = False
                elif not stalled:
                    stalled = True
                    log.error("the database writer has shown no sign of life for %.0f s: watchdog "
                              "pings stop, systemd will restart the monitor", age)
            if now - last_status >= STATUS_EVERY_S:
                last_status = now
                systemd.notify(f"STATUS={self.status_line()}", self.environ)
            await asyncio.sleep(min(interval or STATUS_EVERY_S, STATUS_EVERY_S))

    async def _retention(self):
        loop = asyncio.get_running_loop()
        snapshots = self.config.snapshots.retention_days if self.config.snapshots.keep else 0
        while True:
            try:
                deleted = await loop.run_in_executor(
                    None, self.store.prune, time.time() * 1000, self.config.retention_days, snapshots)
                if any(deleted.values()):
                    log.info("retention (%g days, snapshots %g): deleted %s", self.config.retention_days,
                             snapshots, ", ".join(f"{n} {k}" for k, n in deleted.items() if n))
            except DatabaseError as exc:
                log.error("retention: database error: %s; tried again in an hour", exc)
            await asyncio.sleep(RETENTION_EVERY_S)
