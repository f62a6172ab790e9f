"""sd_notify(3) without a dependency: READY, WATCHDOG, STATUS and STOPPING to $NOTIFY_SOCKET."""
import os
import socket


def notify(message, environ=os.environ):
    """Send one notification; a no-op (False) when not run by systemd with Type=notify."""
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())
    return True


def watchdog_interval(environ=os.environ):
    """Seconds between watchdog pings (half of WatchdogSec), or None without a watchdog."""
    usec = environ.get("WATCHDOG_USEC")
    if not usec or (environ.get("WATCHDOG_PID") and int(environ["WATCHDOG_PID"]) != os.getpid()):
        return None
    return int(usec) / 2e6
