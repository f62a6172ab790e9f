"""The monitor's systemd unit (verified, its sandbox scored, each exception explained), its
install script (bash -n, shellcheck), and `maskdet monitor` as systemd runs it: READY, watchdog
pings, SIGTERM, exit 78 for a bad config."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from tests.monitor.conftest import start_process, write_config

UNIT = os.path.join(REPO_ROOT, "systemd", "maskdet-monitor.service")
SCRIPT = os.path.join(REPO_ROOT, "systemd", "install-monitor.sh")
MAX_EXPOSURE = 2.0


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("needs systemd-analyze (apt-get install systemd; tools/setup.sh --dev installs it)")
    maskdet = shutil.which("maskdet", path=os.path.dirname(sys.executable))
    with open(UNIT) as handle:
        unit = handle.read()
    (tmp_path / "maskdet-monitor.service").write_text(
        unit.replace("/opt/maskdet-monitor/venv/bin/maskdet", maskdet))
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "maskdet-monitor.service")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "maskdet-monitor.service" not in proc.stderr, proc.stderr


def test_the_unit_has_what_the_service_needs():
    with open(UNIT) as handle:
        unit = handle.read()
    for line in ("Type=notify", "WatchdogSec=30", "Restart=on-failure", "RestartPreventExitStatus=78",
                 "StateDirectory=maskdet-monitor", "User=maskdet-monitor",
                 "ExecStart=/opt/maskdet-monitor/venv/bin/maskdet monitor --config /etc/maskdet-monitor/monitor.yaml",
                 "LoadCredential=mqtt-password:/etc/maskdet-monitor/mqtt-password",
                 "LoadCredential=monitor-token:/etc/maskdet-monitor/monitor-token",
                 "LoadCredential=db-password:/etc/maskdet-monitor/db-password", "UMask=0077"):
        assert line in unit, line


def exposure(unit_path):
    """systemd-analyze security's overall exposure of a unit file (offline), and its report."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("needs systemd-analyze (apt-get install systemd; tools/setup.sh --dev installs it)")
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit_path)],
                          capture_output=True, text=True, timeout=60)
    if "offline" in proc.stderr and proc.returncode != 0:
        pytest.skip(f"this systemd-analyze cannot score a unit file offline (systemd 250+): {proc.stderr}")
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", proc.stdout)
    assert found, f"no overall exposure in the report:\n{proc.stdout}{proc.stderr}"
    return float(found.group(1)), proc.stdout


def test_the_unit_sandbox_scores_an_exposure_of_at_most_2():
    score, report = exposure(UNIT)
    left = "\n".join(line for line in report.splitlines() if "\u2717" in line)
    assert score <= MAX_EXPOSURE, f"exposure {score} > {MAX_EXPOSURE}; still open:\n{left}"


def test_every_sandbox_exception_of_the_unit_is_explained():
    with open(UNIT) as handle:
        unit = handle.read()
    for setting in ("PrivateNetwork=", "IPAddressDeny=", "RestrictAddressFamilies", "RootDirectory=",
                    "DeviceAllow=", "UMask="):
        assert re.search(rf"^#.*{re.escape(setting)}", unit, re.M), f"no comment on {setting}"
    for line in ("PrivateDevices=yes", "PrivateUsers=yes", "ProcSubset=pid", "CapabilityBoundingSet=\n",
                 "MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service",
                 "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n", "DevicePolicy=closed"):
        assert line in unit, line


def test_the_install_script_is_valid_bash_and_passes_shellcheck():
    proc = subprocess.run(["bash", "-n", SCRIPT], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    if not shutil.which("shellcheck"):
        pytest.skip("needs shellcheck (apt-get install shellcheck; tools/setup.sh --dev installs it)")
    # -x from the repository: the script's `. install-common.sh` is checked with it
    proc = subprocess.run(["shellcheck", "-x", os.path.relpath(SCRIPT, REPO_ROOT)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def receive(sock, wanted, seen):
    """Read notifications until one holds `wanted`."""
    while True:
        message = sock.recv(4096).decode()
        seen.append(message)
        if wanted in message:
            return seen


def test_the_process_says_ready_pings_the_watchdog_and_stops_on_sigterm(broker, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    config = write_config(tmp_path, broker)
    proc = start_process(config, path)
    try:
        seen = receive(sock, "READY=1", [])
        receive(sock, "WATCHDOG=1", seen)
        proc.send_signal(signal.SIGTERM)
        receive(sock, "STOPPING=1", seen)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    log = open(f"{config}.log").read()
    assert "dashboard on http://127.0.0.1:" in log and "stopping" in log
    assert "Traceback" not in log


def test_a_bad_config_exits_78_before_anything_starts(tmp_path):
    config = write_config(tmp_path, extra="bogus_key: 1\n")
    proc = start_process(config)
    assert proc.wait(60) == 78
    log = open(f"{config}.log").read()
    assert "bogus_key (line" in log and "unknown key" in log
    assert not (tmp_path / "monitor.db").exists()


def test_an_unreachable_database_at_start_exits_1_for_systemd_to_retry(tmp_path):
    config = write_config(tmp_path, database="postgresql://nobody@127.0.0.1:1/none")
    proc = start_process(config)
    assert proc.wait(60) == 1
    assert "OperationalError" in open(f"{config}.log").read()
