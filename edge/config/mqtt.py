"""The broker connection as both the daemon and the monitor configure it (`mqtt:`), and the checks
of names that become MQTT topics or network addresses. Light on purpose (no inference core), so
the monitor can use it."""
from dataclasses import dataclass, field
from typing import Optional

from edge.settings import in_range


def _help(text, check=None):
    return {"help": text, "check": check} if check else {"help": text}


def bad_characters(value):
    """What is wrong with characters of a name or path (NUL, control characters, not UTF-8)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "holds characters that cannot be written as UTF-8"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        return "holds a control character (NUL, tab, newline ...)"
    return None


def topic_level(value):
    """A check for one MQTT topic level (device_id): not empty, no `/`, no wildcards `+` `#`, no
    control characters, no surrounding spaces, not starting with `$` (brokers keep `$` topics to
    themselves: such a device would publish where nobody subscribes)."""
    if not value:
        return "must not be empty"
    problem = bad_characters(value)
    if problem:
        return problem
    if value != value.strip():
        return "must not start or end with a space"
    for char, what in (("/", "the topic separator"), ("+", "an MQTT wildcard"),
                       ("#", "an MQTT wildcard")):
        if char in value:
            return f"must not contain '{char}' ({what}); use letters, digits, - and _"
    if value.startswith("$"):
        return "must not start with '$' (reserved for the broker's own topics)"
    return None


def topic_prefix(value):
    """A check for a topic prefix (mqtt.prefix, the discovery prefix): one or more topic levels
    joined by `/` (e.g. `site/maskdet`): no empty level, so no leading, trailing or double `/`."""
    if not value:
        return "must not be empty"
    if value.startswith("/") or value.endswith("/") or "//" in value:
        return "must not start or end with '/' nor hold '//' (empty topic levels)"
    for level in value.split("/"):
        problem = topic_level(level)
        if problem:
            return f"topic level '{level}' {problem}"
    return None


def host_name(value):
    """A check for the broker's host: a name or an IP address, nothing else."""
    if not value.strip():
        return "must not be empty: give the broker's host name or IP address"
    problem = bad_characters(value)
    if problem:
        return problem
    if any(c.isspace() for c in value):
        return "must not contain spaces"
    if "://" in value or "/" in value:
        return "give only the host name or IP address (no mqtt:// nor path); the port goes in mqtt.port"
    if value.count(":") == 1:
        return "give the port in mqtt.port, not after the host"
    return None


def file_path(value):
    """A check for a path the config names: not empty, no NUL or control characters."""
    if not value.strip():
        return "must not be empty: give a path or leave the key out"
    return bad_characters(value)


@dataclass(frozen=True)
class TlsConfig:
    """TLS towards the broker."""

    ca_file: Optional[str] = field(default=None, metadata=_help("CA bundle (PEM); null: the system's",
                                                               file_path))
    cert_file: Optional[str] = field(default=None, metadata=_help("client certificate (PEM)", file_path))
    key_file: Optional[str] = field(default=None, metadata=_help(
        "client key (PEM, not encrypted); null: in cert_file", file_path))
    insecure: bool = field(default=False, metadata=_help("skip host name checks (testing only)"))

    def __post_init__(self):
        if self.key_file and not self.cert_file:
            raise ValueError("mqtt.tls.key_file is set without cert_file: give the client "
                             "certificate in cert_file too, or remove key_file")


@dataclass(frozen=True)
class HomeAssistantConfig:
    """Home Assistant MQTT discovery."""

    enabled: bool = field(default=False, metadata=_help(
        "announce the device and each camera's entities (alert, people, fps, switches ...)"))
    discovery_prefix: str = field(default="homeassistant", metadata=_help(
        "Home Assistant's discovery prefix", topic_prefix))


@dataclass(frozen=True)
class BrokerConfig:
    """Reaching the broker: address, topic prefix, login and TLS (the keys the daemon and the
    monitor share)."""

    host: str = field(default="localhost", metadata=_help("broker host name or IP address", host_name))
    port: int = field(default=1883, metadata=_help("broker port", in_range(1, 65535)))
    prefix: str = field(default="maskdet", metadata=_help(
        "topics start with <prefix>/<device_id>; levels joined by / (site/maskdet), no + or #",
        topic_prefix))
    username: Optional[str] = field(default=None, metadata=_help("user name"))
    password_env: str = field(default="MASKDET_MQTT_PASSWORD", metadata=_help(
        "environment variable holding the password"))
    password_credential: str = field(default="mqtt-password", metadata=_help(
        "systemd credential name holding the password ($CREDENTIALS_DIRECTORY/<name>)"))
    tls: Optional[TlsConfig] = field(default=None, metadata=_help("TLS settings; absent: plain TCP"))
    keepalive_s: int = field(default=30, metadata=_help("MQTT keepalive", in_range(5, 3600)))


@dataclass(frozen=True)
class MqttConfig(BrokerConfig):
    """The daemon's `mqtt` section: the broker and what is published."""

    stats_interval_s: float = field(default=30.0, metadata=_help("period of <prefix>/stats", in_range(1, 86400)))
    outbox_path: str = field(default="/var/lib/maskdet/outbox.db", metadata=_help(
        "SQLite outbox of unsent events; :memory: keeps them in memory only", file_path))
    outbox_max_events: int = field(default=10000, metadata=_help("oldest events drop beyond this", in_range(10, 10_000_000)))
    home_assistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig, metadata=_help("discovery"))
