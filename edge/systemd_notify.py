"""sd_notify(3) without a dependency, for the daemon's and the monitor's units: READY, RELOADING,
WATCHDOG, STATUS and STOPPING to $NOTIFY_SOCKET, and a heartbeat that feeds the watchdog while a
long step runs. Outside systemd every call is a no-op."""
import logging
import os
import socket
import threading
import time

log = logging.getLogger(__name__)

HEARTBEAT_LIMIT_S = 120.0  # a start or reload still running after this long is hung
_failed = set()  # sockets a failure was logged for (once each, not once per ping)


def notify(message, environ=os.environ):
    """Send one notification; False when not run by systemd with Type=notify, or when the socket
    cannot be reached (logged once; a notification is never worth stopping the service). It never
    blocks: a socket nobody reads would otherwise hold the caller once its queue fills."""
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect(address)
            sock.send(message.encode())
    except OSError as exc:
        level = logging.DEBUG if address in _failed else logging.WARNING
        _failed.add(address)
        log.log(level, "sd_notify to %s failed: %s", environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def watchdog_interval(environ=os.environ):
    """Seconds between watchdog pings (half of WatchdogSec), or None without a watchdog."""
    usec, pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and (not pid.isdigit() or int(pid) != os.getpid())):
        return None  # no watchdog, another process's, or a value systemd would never set
    return int(usec) / 2e6


def monotonic_usec():
    """CLOCK_MONOTONIC in microseconds, as systemd wants it beside RELOADING=1."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Heartbeat:
    """A context manager that pings the watchdog from a thread of its own while a long step runs
    (the start, a reload: models loading, cameras opening), when the frame loop, which pings only
    while frames flow, does not run. It stops pinging after `limit_s`, so a step that hangs still
    gets the service restarted. A no-op without a watchdog."""

    def __init__(self, limit_s=HEARTBEAT_LIMIT_S, environ=os.environ):
        self.interval = watchdog_interval(environ)
        self.limit_s = limit_s
        self.environ = environ
        self._done = threading.Event()
        self._thread = None

    def __enter__(self):
        if self.interval:
            self._thread = threading.Thread(target=self._beat, name="watchdog-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        return False

    def _beat(self):
        deadline = time.monotonic() + self.limit_s
        while time.monotonic() < deadline:
            notify("WATCHDOG=1", self.environ)
            if self._done.wait(self.interval):
                return
        log.error("start or reload still running after %.0f s: watchdog pings stop, systemd will "
                  "restart the service", self.limit_s)
