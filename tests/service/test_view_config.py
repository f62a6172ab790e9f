"""check-config for the HTTP view and snapshots: a listen beyond loopback needs a token, a token
must be long enough, a bad address or a folder that cannot be written names its key."""
import pytest

from edge.config.checks import check_config
from edge.errors import ConfigError
from tests.config.helpers import write_config

TOKEN = "0123456789abcdef0123"


@pytest.fixture(autouse=True)
def no_token(monkeypatch):
    monkeypatch.delenv("MASKDET_HTTP_TOKEN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def test_the_view_is_off_by_default_and_on_loopback_needs_no_token(tmp_path):
    config = check_config(write_config(tmp_path))
    assert not config.http.enabled and not config.snapshots.enabled and config.privacy.blur_faces
    config = check_config(write_config(tmp_path, {"http.enabled": True}))
    assert config.http.listen == "127.0.0.1:8080"
    check_config(write_config(tmp_path, {"http.enabled": True, "http.listen": "[::1]:8080"}))


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "192.168.1.20:8080", "[::]:8080"])
def test_beyond_loopback_without_a_token_is_refused(tmp_path, listen):
    with pytest.raises(ConfigError, match=r"http\.listen: .*no token is set.*MASKDET_HTTP_TOKEN"):
        check_config(write_config(tmp_path, {"http.enabled": True, "http.listen": listen}))
    # off, the same address is no problem
    check_config(write_config(tmp_path, {"http.listen": listen}))


def test_a_token_from_the_environment_or_a_credential_allows_it(tmp_path, monkeypatch):
    path = write_config(tmp_path, {"http.enabled": True, "http.listen": "0.0.0.0:8080"})
    monkeypatch.setenv("MASKDET_HTTP_TOKEN", TOKEN)
    check_config(path)
    monkeypatch.delenv("MASKDET_HTTP_TOKEN")
    (tmp_path / "http-token").write_text(TOKEN + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    check_config(path)


def test_a_short_token_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKDET_HTTP_TOKEN", "short")
    with pytest.raises(ConfigError, match="5 characters; use at least 12"):
        check_config(write_config(tmp_path, {"http.enabled": True}))


@pytest.mark.parametrize("key, value, message", [
    ("http.listen", "pi.local:8080", "is not an IP address"),
    ("http.listen", "8080", "HOST:PORT"),
    ("http.max_fps", 0, "between 0.2 and 30"),
    ("snapshots.crop", "person", "face, frame"),
    ("privacy.blur_faces", "no", "expected bool"),
    ("snapshots.max_files", 0, "between 1"),
])
def test_bad_values_name_their_key(tmp_path, key, value, message):
    with pytest.raises(ConfigError, match=message) as caught:
        check_config(write_config(tmp_path, {key: value}))
    assert key in str(caught.value)


def test_a_snapshot_folder_that_cannot_be_made_is_refused_only_when_kept(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    changes = {"snapshots.enabled": True, "snapshots.folder": str(blocker / "snaps")}
    check_config(write_config(tmp_path, changes))  # not kept: never written
    with pytest.raises(ConfigError, match="snapshots.folder: .* cannot be created"):
        check_config(write_config(tmp_path, dict(changes, **{"snapshots.keep": True})))
    with pytest.raises(ConfigError, match="snapshots.folder: .* is a file"):
        check_config(write_config(tmp_path, {"snapshots.enabled": True, "snapshots.keep": True,
                                             "snapshots.folder": str(blocker)}))
    made = tmp_path / "new" / "snaps"
    check_config(write_config(tmp_path, {"snapshots.enabled": True, "snapshots.keep": True,
                                         "snapshots.folder": str(made)}))
    assert made.is_dir()
