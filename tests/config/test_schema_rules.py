"""The schema and loader rules that `maskdet run` relies on: finite numbers, MQTT topic levels,
the broker host, `url: 0`, file encodings and YAML syntax, each a one-line ConfigError naming the
file and the key."""
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Optional

import pytest

from edge.config import Config, load_config
from edge.config.loader import load_yaml
from edge.errors import ConfigError
from edge.settings import in_range, setting
from tests.config.helpers import assert_one_line_error, write_config


def minimal(tmp_path):
    """A valid config that opens no model (the schema alone)."""
    return {"device_id": "test-pi",
            "cameras": [{"name": "door", "source": {"type": "opencv", "url": "0"}}],
            "gpio": {"green": {"pin": 17}, "red": {"pin": 27}, "buzzer": {"pin": 22}},
            "mqtt": {"outbox_path": ":memory:"}}


def load(tmp_path, changes=None):
    return load_config(write_config(tmp_path, changes, minimal(tmp_path)))


def refused(tmp_path, changes, *words):
    path = write_config(tmp_path, changes, minimal(tmp_path))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return assert_one_line_error(caught.value, path, *words)


def test_the_minimal_config_loads(tmp_path):
    assert load(tmp_path).device_id == "test-pi"


# -- 8. finite numbers ---------------------------------------------------------------------

def _float_keys(cls, prefix=""):
    """Every key of the schema whose value is a float (or an Optional float)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind, path = hints[f.name], prefix + f.name
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            kind = args[0] if len(args) == 1 else kind
        if typing.get_origin(kind) is list:
            kind, path = typing.get_args(kind)[0], path + "[0]"
        if dataclasses.is_dataclass(kind):
            yield from _float_keys(kind, path + ".")
        elif kind is float:
            yield path


FLOAT_KEYS = sorted(_float_keys(Config))


def test_the_float_keys_are_found():
    # The parametrised test below covers every float key only if this walk finds them all.
    for key in ("cameras[0].source.fps", "detector.score_threshold", "detector.iou_threshold",
                "decision.no_mask_above", "decision.mask_below", "decision.alert_clear_s",
                "gpio.cooldown_s", "gpio.buzzer.on_s", "mqtt.stats_interval_s"):
        assert key in FLOAT_KEYS
    assert len(FLOAT_KEYS) >= 12


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_no_float_key_takes_nan_or_infinity(tmp_path, key, value):
    refused(tmp_path, {key: value}, key, "finite")


def test_nan_written_by_hand_is_refused_with_its_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("cameras:\n  - {name: door, source: {type: opencv, url: '0'}}\n"
                    "decision:\n  no_mask_above: .nan\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert_one_line_error(caught.value, path, "decision.no_mask_above (line 4)", "finite")


def test_a_float_too_large_for_a_double_is_refused(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("cameras:\n  - {name: door, source: {type: opencv, url: '0'}}\n"
                    f"gpio:\n  cooldown_s: 1{'0' * 400}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert_one_line_error(caught.value, path, "gpio.cooldown_s", "too large")


@dataclass(frozen=True)
class _Section:
    plain: float = 1.0  # no check of its own
    maybe: Optional[float] = setting(None, "an optional float without a range")


@pytest.mark.parametrize("text", ["plain: .nan", "maybe: .inf", "maybe: -.inf", "plain: 1.0e+999"])
def test_the_loader_refuses_non_finite_floats_in_any_section(text):
    with pytest.raises(ConfigError) as caught:
        load_yaml(_Section, text, "s.yaml")
    assert_one_line_error(caught.value, "s.yaml", text.split(":")[0], "finite")
    assert load_yaml(_Section, "plain: 2\nmaybe: 0.5", "s.yaml") == _Section(2.0, 0.5)


def test_the_field_checks_refuse_non_finite_numbers():
    assert in_range(0, 1)(math.nan) and in_range(0, 1)(math.inf)
    assert in_range(low=0)(math.nan) == "must be a finite number at least 0"
    assert in_range(0, 1)(0.5) is None


# -- 9. device_id and the topic prefixes -------------------------------------------------------

@pytest.mark.parametrize("device_id", ["a/#", "door/1", "a+b", "#", "", "$SYS", " pi", "pi ",
                                       "a\x00b", "a\nb"])
def test_a_device_id_that_breaks_topics_is_refused(tmp_path, device_id):
    refused(tmp_path, {"device_id": device_id}, "device_id")


@pytest.mark.parametrize("device_id", ["entrance-pi", "pi.local", "door_2", "Eingang-Süd"])
def test_a_device_id_that_is_one_topic_level_is_taken(tmp_path, device_id):
    assert load(tmp_path, {"device_id": device_id}).device_id == device_id


@pytest.mark.parametrize("prefix", ["/maskdet", "maskdet/", "site//maskdet", "site/+/maskdet",
                                    "maskdet/#", "", "$SYS/maskdet", "site/ x"])
def test_a_bad_topic_prefix_is_refused(tmp_path, prefix):
    refused(tmp_path, {"mqtt.prefix": prefix}, "mqtt.prefix")


@pytest.mark.parametrize("prefix", ["maskdet", "site/maskdet", "acme/hq/door-3"])
def test_a_prefix_of_non_empty_levels_is_taken(tmp_path, prefix):
    assert load(tmp_path, {"mqtt.prefix": prefix}).mqtt.prefix == prefix


def test_the_discovery_prefix_follows_the_prefix_rules(tmp_path):
    refused(tmp_path, {"mqtt.home_assistant.discovery_prefix": "home/#"},
            "mqtt.home_assistant.discovery_prefix")
    assert load(tmp_path, {"mqtt.home_assistant.discovery_prefix": "ha/disc"})


# -- 6. the broker host ---------------------------------------------------------------------

@pytest.mark.parametrize("host", ["", "   ", "mqtt://broker", "broker:1883", "bro ker",
                                  "broker/x"])
def test_a_host_run_cannot_connect_to_is_refused(tmp_path, host):
    refused(tmp_path, {"mqtt.host": host}, "mqtt.host")


@pytest.mark.parametrize("host", ["localhost", "broker.lan", "10.0.0.2", "::1", "fd00::5"])
def test_host_names_and_addresses_are_taken(tmp_path, host):
    assert load(tmp_path, {"mqtt.host": host}).mqtt.host == host


# -- 10. url: 0 ---------------------------------------------------------------------------

def test_a_v4l2_index_as_a_yaml_int_is_taken_as_its_string(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("cameras:\n  - name: door\n    source: {type: opencv, url: 0}\n"
                    "  - name: side\n    source: {type: opencv, url: 2}\n")
    config = load_config(path)
    assert [c.source.url for c in config.cameras] == ["0", "2"]


def test_the_int_rule_is_narrow(tmp_path):
    # Only source.url takes an int; other str keys still want a string, and -1 is no device.
    refused(tmp_path, {"cameras[0].source.url": -1}, "cameras[0].source.url", "0 or more")
    refused(tmp_path, {"cameras[0].source": {"type": "folder", "path": 5}},
            "cameras[0].source.path", "expected str")
    refused(tmp_path, {"device_id": 7}, "device_id", "expected str")
    refused(tmp_path, {"cameras[0].source.url": True}, "cameras[0].source.url", "expected str")


@pytest.mark.parametrize("text, ok", [("010", "010"), ("0x1f", None), ("1_0", None), ("-1", None)])
def test_a_device_number_is_taken_as_written(tmp_path, text, ok):
    path = tmp_path / "config.yaml"
    path.write_text(f"cameras:\n  - name: door\n    source: {{type: opencv, url: {text}}}\n")
    if ok:
        assert load_config(path).cameras[0].source.url == ok  # not YAML 1.1's octal 8
    else:
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert_one_line_error(caught.value, path, "cameras[0].source.url (line 3)", "decimal")


def test_the_example_config_uses_url_0_and_loads(tmp_path):
    # The example documents `url: ... 0 ...`; a config written that way must load.
    path = tmp_path / "config.yaml"
    path.write_text("cameras:\n  - name: door\n    source:\n      type: opencv\n      url: 0\n")
    assert load_config(path).cameras[0].source.url == "0"


# -- paths the config names ------------------------------------------------------------------

@pytest.mark.parametrize("key", ["mqtt.outbox_path", "cameras[0].source.url", "mqtt.tls.ca_file"])
def test_an_empty_path_is_refused(tmp_path, key):
    refused(tmp_path, {key: "  "}, key, "empty")


def test_a_key_file_without_a_certificate_is_refused(tmp_path):
    refused(tmp_path, {"mqtt.tls": {"key_file": "/etc/maskdet/client.key"}}, "mqtt.tls",
            "cert_file")


# -- 7. file encoding and YAML syntax ------------------------------------------------------

def test_a_latin1_config_names_the_file_and_the_byte(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes("cameras:\n  - {name: door, source: {type: opencv, url: '0'}}\n"
                     "device_id: café\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    offset = path.read_bytes().index(b"\xe9")
    assert_one_line_error(caught.value, path, "UTF-8", f"position {offset}", "line 3", "0xe9")


def test_a_utf8_byte_order_mark_is_harmless(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\xef\xbb\xbfcameras:\n  - {name: door, source: {type: opencv, url: '0'}}\n")
    assert load_config(path).cameras[0].name == "door"


def test_a_yaml_syntax_error_is_one_line_with_the_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("cameras:\n  - name: door\n    source: {type: opencv\nmqtt: [\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert_one_line_error(caught.value, path, "not valid YAML", "line")


def test_a_control_character_is_one_line_with_the_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("cameras:\n  - {name: door, source: {type: opencv, url: '0'}}\ndevice_id: a\x07b\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert_one_line_error(caught.value, path, "line 3")


def test_a_key_that_is_not_a_name_is_refused(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("cameras:\n  - {name: door, source: {type: opencv, url: '0'}}\n? [a, b]\n: 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert_one_line_error(caught.value, path, "plain name")


def test_an_unreadable_config_names_the_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)  # a folder
    assert_one_line_error(caught.value, tmp_path, "cannot read")


def test_camera_names_that_home_assistant_would_merge_are_refused(tmp_path):
    from edge.config.loader import load_yaml
    from edge.config.schema import Config

    text = """
cameras:
  - {name: front-door, source: {type: opencv, url: /dev/video0}}
  - {name: front_door, source: {type: opencv, url: /dev/video1}}
"""
    with pytest.raises(ConfigError, match="Home Assistant would see one camera"):
        load_yaml(Config, text, "c.yaml")
