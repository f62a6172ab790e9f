"""sd_notify(3) for the monitor's unit (Type=notify, WatchdogSec=): READY, WATCHDOG, STATUS and
STOPPING to $NOTIFY_SOCKET, without a dependency. Outside systemd every call is a no-op."""
import logging
import os
import socket

log = logging.getLogger(__name__)
_warned = set()


def notify(message, environ=os.environ):
    """Send one notification; False when there is no socket or it cannot be reached (logged
    once: a notification is never worth stopping the monitor). It never blocks: it is sent from
    the event loop, and a socket nobody reads would otherwise hold the loop once its queue fills."""
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
        if address not in _warned:
            _warned.add(address)
            log.warning("sd_notify to %s failed: %s", environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def watchdog_interval(environ=os.environ):
    """Seconds between watchdog pings (half of WatchdogSec), or None without a watchdog."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6
