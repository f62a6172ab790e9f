"""systemd/install-monitor.sh run into a temporary root, with its real pip step (a fresh venv and
`pip install .[monitor]`), then run again: what it writes, with which modes, the unit pointing at
the moved locations, and the installed `maskdet monitor --check`."""
import os
import shutil
import stat
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

INSTALL = os.path.join(REPO_ROOT, "systemd", "install-monitor.sh")
SKIP = "apt user systemctl"  # what a test cannot do on the machine that runs it


def run_install(root, skip=SKIP, timeout=600):
    env = dict(os.environ, MASKDET_MONITOR_PREFIX=str(root / "opt"), MASKDET_MONITOR_CONF=str(root / "etc"),
               MASKDET_MONITOR_STATE=str(root / "state"), MASKDET_UNIT_DIR=str(root / "units"),
               MASKDET_PYTHON=sys.executable, MASKDET_SKIP=skip)
    return subprocess.run(["bash", INSTALL], capture_output=True, text=True, env=env, timeout=timeout)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """One real install (about 20 s with a warm pip cache)."""
    root = tmp_path_factory.mktemp("root")
    proc = run_install(root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, proc


def test_install_writes_the_config_the_secrets_and_the_state_folder(installed):
    root, proc = installed
    config = (root / "etc" / "monitor.yaml").read_text()
    with open(os.path.join(REPO_ROOT, "systemd", "monitor.example.yaml")) as handle:
        example = handle.read()
    assert config == example.replace("sqlite:////var/lib/maskdet-monitor/", f"sqlite:///{root}/state/")
    assert mode(root / "etc") == 0o750 and mode(root / "etc" / "monitor.yaml") == 0o640
    for secret in ("mqtt-password", "db-password"):
        assert mode(root / "etc" / secret) == 0o600 and (root / "etc" / secret).read_text() == ""
    token = (root / "etc" / "monitor-token").read_text().strip()
    assert mode(root / "etc" / "monitor-token") == 0o600 and len(token) == 48
    assert mode(root / "state") == 0o750
    assert (root / "opt" / "README.md").is_file()


def test_the_installed_unit_points_at_the_moved_locations(installed):
    root, _ = installed
    unit = (root / "units" / "maskdet-monitor.service").read_text()
    assert mode(root / "units" / "maskdet-monitor.service") == 0o644
    assert f"ExecStart={root}/opt/venv/bin/maskdet monitor --config {root}/etc/monitor.yaml\n" in unit
    assert f"LoadCredential=monitor-token:{root}/etc/monitor-token\n" in unit
    with open(os.path.join(REPO_ROOT, "systemd", "maskdet-monitor.service")) as handle:
        original = handle.read()
    assert unit.replace(f"{root}/opt", "/opt/maskdet-monitor").replace(f"{root}/etc", "/etc/maskdet-monitor") \
        == original


def test_the_installed_monitor_checks_its_config(installed):
    root, proc = installed
    # install-monitor.sh ends with the check, with the secrets where systemd hands them over.
    assert f"{root}/etc/monitor.yaml: valid;" in proc.stdout, proc.stdout + proc.stderr
    assert "token set" in proc.stdout
    maskdet = root / "opt" / "venv" / "bin" / "maskdet"
    check = subprocess.run([str(maskdet), "monitor", "--check", "--config", str(root / "etc" / "monitor.yaml")],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "no token (loopback only)" in check.stdout, check.stderr


def test_the_installed_package_holds_the_page_and_the_migrations(installed, tmp_path):
    root, _ = installed
    code = ("import os, sys; from monitor import web; from monitor.store import Store; "
            "assert all(os.path.isfile(os.path.join(web.STATIC_DIR, f)) for f in "
            "('index.html', 'app.js', 'style.css')), os.listdir(web.STATIC_DIR); "
            f"Store.open('sqlite:///{tmp_path}/m.db').close(); print(web.__file__)")
    proc = subprocess.run([str(root / "opt" / "venv" / "bin" / "python"), "-c", code], capture_output=True,
                          text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(str(root / "opt" / "venv")), proc.stdout  # not this checkout


def test_the_installed_unit_passes_systemd_analyze_verify(installed):
    if not shutil.which("systemd-analyze"):
        pytest.skip("needs systemd-analyze (apt-get install systemd; tools/setup.sh --dev installs it)")
    root, _ = installed
    proc = subprocess.run(["systemd-analyze", "verify", str(root / "units" / "maskdet-monitor.service")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "maskdet-monitor.service" not in proc.stderr, proc.stderr


def test_a_second_install_keeps_the_config_the_token_and_the_passwords(installed):
    root, _ = installed
    config, token, password = (root / "etc" / n for n in ("monitor.yaml", "monitor-token", "mqtt-password"))
    edited = config.read_text().replace("host: localhost", "host: broker.site")
    config.write_text(edited)
    before = token.read_text()
    password.write_text("s3cret\n")
    (root / "units" / "maskdet-monitor.service").write_text("stale\n")
    proc = run_install(root, skip=SKIP + " pip")  # the venv stays; pip ran above
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert config.read_text() == edited and f"kept {config}" in proc.stdout
    assert token.read_text() == before and "kept the dashboard token" in proc.stdout
    assert password.read_text() == "s3cret\n" and mode(password) == 0o600
    assert "ExecStart=" in (root / "units" / "maskdet-monitor.service").read_text()


def test_install_refuses_an_unknown_step_to_skip(tmp_path):
    proc = run_install(tmp_path, skip="apt pyp")
    assert proc.returncode == 2 and "unknown step 'pyp'" in proc.stderr
    assert not os.listdir(tmp_path)
