"""The systemd unit, the example config and the install script."""
import dataclasses
import os
import shutil
import subprocess
import sys
import typing

import pytest

from edge.config import Config, load_config
from tests.conftest import REPO_ROOT

SYSTEMD = os.path.join(REPO_ROOT, "systemd")


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("needs systemd-analyze (apt-get install systemd; .ci/run installs it)")
    with open(os.path.join(SYSTEMD, "maskdet.service")) as f:
        unit = f.read()
    # verify checks that ExecStart exists: point it at this checkout's installed command.
    maskdet = shutil.which("maskdet", path=os.path.dirname(sys.executable))
    (tmp_path / "maskdet.service").write_text(unit.replace("/opt/maskdet/venv/bin/maskdet", maskdet))
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "maskdet.service")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "maskdet.service" not in proc.stderr, proc.stderr  # no warning about our unit


def test_the_unit_has_what_the_service_needs():
    with open(os.path.join(SYSTEMD, "maskdet.service")) as f:
        unit = f.read()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "RestartPreventExitStatus=78",
                 "StateDirectory=maskdet", "LoadCredential=mqtt-password:", "User=maskdet",
                 "SupplementaryGroups=video gpio plugdev", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in unit


def _field_names(cls):
    names = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        names.add(f.name)
        kind = hints[f.name]
        for arg in (kind, *typing.get_args(kind)):
            for inner in (arg, *typing.get_args(arg)):
                if dataclasses.is_dataclass(inner):
                    names |= _field_names(inner)
    return names


def test_the_example_config_is_valid_and_documents_every_key():
    path = os.path.join(SYSTEMD, "maskdet.example.yaml")
    load_config(path)
    with open(path) as f:
        text = f.read()
    missing = sorted(n for n in _field_names(Config) if f"{n}:" not in text)
    assert not missing, f"keys not documented in the example: {missing}"


def test_the_install_script_is_valid_bash_and_guards_each_step():
    script = os.path.join(SYSTEMD, "install.sh")
    assert subprocess.run(["bash", "-n", script]).returncode == 0
    with open(script) as f:
        text = f.read()
    assert "id \"$SERVICE_USER\"" in text and "[ ! -f \"$CONF/config.yaml\" ]" in text
    assert "--system-site-packages" in text and "systemctl enable" in text


def test_the_demo_config_of_the_readme_is_valid():
    config = load_config(os.path.join(SYSTEMD, "demo.yaml"))
    assert config.cameras[0].source.type == "opencv" and not config.cameras[0].source.loop
