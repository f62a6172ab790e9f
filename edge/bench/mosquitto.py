"""A mosquitto broker on a free loopback port, started and stopped on demand (benchmarks, tests)."""
import os
import shutil
import socket
import subprocess
import time

from edge.errors import MaskdetError


class Mosquitto:
    """`mosquitto -c <generated conf>` listening on 127.0.0.1 only."""

    def __init__(self, work_dir, persistence=False, listener_options=(), anonymous=True):
        self.exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(self.exe):
            raise MaskdetError("mosquitto is not installed (apt-get install mosquitto)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host = "127.0.0.1"
        self.conf = os.path.join(work_dir, "mosquitto.conf")
        lines = [f"listener {self.port} 127.0.0.1", *listener_options,
                 f"allow_anonymous {'true' if anonymous else 'false'}"]
        if os.geteuid() == 0:  # keep root: the files it reads and writes are in root's temp dirs
            lines.append("user root")
        if persistence:  # sessions and queued QoS 1 messages survive a restart of the broker
            lines += ["persistence true", f"persistence_location {work_dir}/", "autosave_interval 1"]
        else:
            lines += ["persistence false"]
        with open(self.conf, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        self.proc = None

    def start(self, timeout=10.0):
        """Start and wait until it accepts connections."""
        self.proc = subprocess.Popen([self.exe, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise MaskdetError(f"mosquitto did not start on port {self.port}")

    def stop(self):
        """Stop it (its port stays reserved for a later start)."""
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
