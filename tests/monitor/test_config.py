"""The monitor's strict config: the example documents every key, bad files are ConfigErrors that
name the key and line (exit 78, also from `maskdet monitor` and `--check`), and the dashboard
never listens beyond loopback without a token."""
import dataclasses
import os
import typing

import pytest

from edge.errors import ConfigError
from monitor.config import DEFAULT_PATH, MonitorConfig, check_monitor_config, load_monitor_config
from tests.conftest import REPO_ROOT, run_cli

EXAMPLE = os.path.join(REPO_ROOT, "systemd", "monitor.example.yaml")
TOKEN = "0123456789abcdef0123"


def field_names(cls):
    names = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        names.add(f.name)
        for arg in (hints[f.name], *typing.get_args(hints[f.name])):
            if dataclasses.is_dataclass(arg):
                names |= field_names(arg)
    return names


def test_the_example_is_valid_documents_every_key_and_shows_the_defaults():
    config = load_monitor_config(EXAMPLE)
    assert config == MonitorConfig()  # every value shown is the default
    with open(EXAMPLE) as handle:
        text = handle.read()
    missing = sorted(n for n in field_names(MonitorConfig) if f"{n}:" not in text)
    assert not missing, f"keys not documented in the example: {missing}"


def test_the_default_path_is_the_command_lines():
    from edge.cli import build_parser

    args = build_parser().parse_args(["monitor"])
    assert args.config == DEFAULT_PATH and not args.check


def write(tmp_path, text):
    path = tmp_path / "monitor.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, says", [
    ("mqtt:\n  hots: x\n", "mqtt.hots (line 2): unknown key 'hots'"),
    ("retention_days: forever\n", "retention_days (line 1): expected float"),
    ("retention_days: .nan\n", "finite"),
    ("retention_days: 0\n", "retention_days (line 1): must be between 1 and 3650"),
    ("http:\n  listen: 8090\n", "http.listen (line 2): expected str"),
    ("http:\n  listen: localhost\n", "HOST:PORT"),
    ("http:\n  listen: '[::1:8090'\n", "http.listen"),
    ("database: mysql://x@y/z\n", "mysql is not supported"),
    ("database: 'sqlite://'\n", "SQLite needs a file"),
    ("database: postgresql://u:secret@h/db\n", "holds a password"),
    ("database: not a url\n", "not a database URL"),
    ("mqtt:\n  prefix: maskdet/#\n", "an MQTT wildcard"),
    ("mqtt:\n  client_id: 'has space'\n", "client_id"),
    ("mqtt:\n  host: 'mqtt://broker'\n", "host name"),
    ("log_level: LOUD\n", "log_level"),
    ("snapshots:\n  max_bytes: 10\n", "snapshots.max_bytes"),
    ("mqtt: [1, 2]\n", "expected a mapping"),
    ("mqtt:\n  host: a\n  host: b\n", "given twice"),
])
def test_bad_values_name_the_key_and_line(tmp_path, text, says):
    with pytest.raises(ConfigError) as bad:
        load_monitor_config(write(tmp_path, text))
    assert says in str(bad.value)


def test_listening_beyond_loopback_needs_a_token(tmp_path):
    path = write(tmp_path, f"database: sqlite:///{tmp_path}/m.db\nhttp:\n  listen: 0.0.0.0:8090\n")
    with pytest.raises(ConfigError, match="token is required"):
        check_monitor_config(path, environ={})
    with pytest.raises(ConfigError, match="shorter than 16"):
        check_monitor_config(path, environ={"MASKDET_MONITOR_TOKEN": "short"})
    assert check_monitor_config(path, environ={"MASKDET_MONITOR_TOKEN": TOKEN})
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "monitor-token").write_text(TOKEN + "\n")
    assert check_monitor_config(path, environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    for loopback in ("127.0.0.1:8090", "[::1]:8090", "localhost:8090"):
        write(tmp_path, f"database: sqlite:///{tmp_path}/m.db\nhttp:\n  listen: '{loopback}'\n")
        assert check_monitor_config(path, environ={})


def test_what_start_needs_is_checked(tmp_path):
    path = write(tmp_path, f"database: sqlite:///{tmp_path}\n")
    with pytest.raises(ConfigError, match="is a folder"):
        check_monitor_config(path, environ={})
    write(tmp_path, "mqtt:\n  tls:\n    ca_file: /nonexistent/ca.pem\n"
                    f"database: sqlite:///{tmp_path}/m.db\n")
    with pytest.raises(ConfigError, match="mqtt.tls.ca_file: /nonexistent/ca.pem is not a readable file"):
        check_monitor_config(path, environ={})
    write(tmp_path, f"database: sqlite:///{tmp_path}/m.db\n")
    with pytest.raises(ConfigError, match="no user name"):
        check_monitor_config(path, environ={"MASKDET_MQTT_PASSWORD": "pw"})
    # nothing is created by a check: the folder comes at start
    write(tmp_path, f"database: sqlite:///{tmp_path}/new/m.db\n")
    check_monitor_config(path, environ={})
    assert not (tmp_path / "new").exists()


def test_the_command_line_checks_and_exits_78(tmp_path):
    good = write(tmp_path, f"database: sqlite:///{tmp_path}/m.db\n")
    proc = run_cli("-m", "edge.cli", "monitor", "--check", "--config", str(good), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"{good}: valid; broker localhost:1883 prefix maskdet/#; database sqlite" in proc.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("mqtt:\n  prot: 1883\n")
    for args in (["--check", "--config", str(bad)], ["--config", str(bad)],
                 ["--config", str(tmp_path / "missing.yaml")]):
        proc = run_cli("-m", "edge.cli", "monitor", *args, timeout=120)
        assert proc.returncode == 78, proc.stderr
        assert proc.stderr.startswith("maskdet: error: ") and len(proc.stderr.splitlines()) == 1
    assert "mqtt.prot (line 2): unknown key 'prot'" in run_cli(
        "-m", "edge.cli", "monitor", "--check", "--config", str(bad), timeout=120).stderr
