"""Where the service keeps its events: the outbox's folder (writable, or made by systemd) and
the free disk space there."""
import os

from edge.doctor.findings import FAIL, OK, WARN, Finding, one_line
from edge.doctor.installed_service import SERVICE_USER, STATE_DIR

DISK_FAIL_BYTES = 50 << 20
DISK_WARN_BYTES = 500 << 20
DISK_WARN_FRACTION = 0.05
DISK_FIX = ("free space: sudo journalctl --vacuum-size=100M, sudo apt-get clean, delete old "
            "snapshots (snapshots.folder)")


def check_outbox(path):
    """The outbox's folder (`check_outbox_path` when it exists; a missing folder is not created
    here: the service makes it)."""
    from edge.errors import ConfigError
    from edge.service.outbox import MEMORY, check_outbox_path

    name = "outbox"
    if str(path) == MEMORY:
        return Finding(name, WARN, "mqtt.outbox_path is :memory:: events the broker has not taken "
                       "are lost when the service stops", "set mqtt.outbox_path to a file, e.g. "
                       f"{STATE_DIR}/outbox.db")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(folder):
        if folder == STATE_DIR:
            return Finding(name, OK, f"{folder} does not exist yet: systemd makes it for the "
                           "service (StateDirectory=maskdet)")
        return Finding(name, WARN, f"{folder} does not exist yet (maskdet run creates it, if it "
                       "may)", f"sudo install -d -o {SERVICE_USER} -g {SERVICE_USER} {folder}")
    try:
        check_outbox_path(path)
    except (ConfigError, OSError, ValueError) as exc:
        return Finding(name, FAIL, one_line(exc), f"give the service user ({SERVICE_USER}) write "
                       "access, or set mqtt.outbox_path to a writable folder")
    as_root = " (checked as root: the service writes as maskdet)" if os.geteuid() == 0 else ""
    return Finding(name, OK, f"{path}: {folder} is writable{as_root}")


def _existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n} B"


def check_disk(path, fail_below=DISK_FAIL_BYTES, warn_below=DISK_WARN_BYTES,
               warn_fraction=DISK_WARN_FRACTION):
    """Free space where the outbox lives (the nearest existing folder of `path`)."""
    name = "disk"
    where = _existing(path)
    try:
        st = os.statvfs(where)
    except OSError as exc:
        return Finding(name, WARN, f"{where}: free space unknown ({exc.strerror or exc})",
                       "check the file system")
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    fraction = free / total if total else 0.0
    detail = f"{_size(free)} free of {_size(total)} ({fraction:.0%}) at {where}"
    data = {"free_bytes": free, "total_bytes": total, "path": where}
    if free < fail_below:
        return Finding(name, FAIL, detail + ": a full disk drops new events", DISK_FIX, data)
    if free < warn_below or fraction < warn_fraction:
        return Finding(name, WARN, detail + ": little left", DISK_FIX, data)
    return Finding(name, OK, detail, data=data)
