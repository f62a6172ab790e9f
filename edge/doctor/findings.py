"""What every check of `maskdet doctor` returns: a `Finding` (its name, `ok` / `warn` / `FAIL`,
what was found and, unless ok, what to do), and the small helpers the checks share.

The statuses are pairs.py's (which stands alone: it only judges a runtime / libedgetpu pair).
"""
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

from edge.doctor.pairs import FAIL, OK, WARN

__all__ = ["FAIL", "OK", "WARN", "Finding", "at", "one_line", "quiet_logging", "read_text"]


@dataclass(frozen=True)
class Finding:
    """One line of the report: `status name: detail; fix: fix`. `data` adds machine-readable
    values (full sha256 sums, versions) to the JSON output."""

    name: str
    status: str
    detail: str
    fix: Optional[str] = None
    data: dict = field(default_factory=dict)

    def line(self):
        """`ok    name: detail` or `FAIL  name: detail; fix: what to do`."""
        text = f"{self.status:<4}  {self.name}: {self.detail}"
        return f"{text}; fix: {self.fix}" if self.fix and self.status != OK else text

    def as_dict(self):
        """The JSON object of this finding (`status` in lower case: ok, warn, fail)."""
        found = {"check": self.name, "status": self.status.lower(), "detail": self.detail,
                 "fix": self.fix if self.status != OK else None}
        return {**found, "data": self.data} if self.data else found


def one_line(text):
    """`text` (an exception, a message) on one line: every run of white space one space."""
    return " ".join(str(text).split())


def read_text(path):
    """A small system file's text (sysfs, /etc/group, a unit), stripped."""
    with open(path, encoding="ascii", errors="replace") as handle:
        return handle.read().strip()


def at(root, *parts):
    """`parts` under `root`, the folder standing for `/` (a temporary tree in the tests)."""
    return os.path.join(root, *parts)


@contextlib.contextmanager
def quiet_logging():
    """Keep the libraries' own log lines (gpiozero faults, the worker's warnings) out of the
    report while a check runs."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)
