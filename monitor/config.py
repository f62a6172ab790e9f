"""The monitor's configuration (`/etc/maskdet-monitor/monitor.yaml`), strict like the daemon's: unknown
keys, wrong types and bad values are ConfigErrors (exit 78) naming the key path and the line.

`load_monitor_config` reads the file; `check_monitor_config` also checks what `maskdet monitor`
needs at start (the database URL and its driver, the SQLite folder, the listen address and the
token it then needs, TLS files, a password without a user name): `maskdet monitor --check` runs
exactly that, and so does the service before it starts.
"""
import importlib.util
import ipaddress
import os
import ssl
from dataclasses import dataclass
from typing import Optional

from edge.config.loader import load_yaml
from edge.config.mqtt import BrokerConfig, file_path, host_name
from edge.mqtt_client import read_password, secret
from edge.errors import ConfigError
from edge.settings import in_range, one_of, setting

DEFAULT_PATH = "/etc/maskdet-monitor/monitor.yaml"
DEFAULT_DATABASE = "sqlite:////var/lib/maskdet-monitor/monitor.db"
# The database password (PostgreSQL), never in the config file.
DB_PASSWORD_ENV = "MASKDET_DB_PASSWORD"
DB_PASSWORD_CREDENTIAL = "db-password"


def client_id(value):
    """A check for the MQTT client id, the name of the monitor's persistent session."""
    if not value or len(value) > 128:
        return "must be 1 to 128 characters"
    if not all(c.isalnum() or c in "-_.:" for c in value):
        return "use letters, digits, - _ . and : only"
    return None


def parse_listen(value):
    """(host, port) of an `http.listen` value `HOST:PORT` (`[IPv6]:PORT`; `:PORT` means every
    address); ValueError says what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("give HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:8090")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host.split("%")[0])  # ValueError when not an IPv6 address
    elif ":" in host:
        raise ValueError("write an IPv6 address in brackets, e.g. [::1]:8090")
    if host:
        try:
            ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            problem = host_name(host)
            if problem:
                raise ValueError(f"host {problem}") from None
    return host or "0.0.0.0", int(port)


def is_loopback(host):
    """True when `host` is a loopback address or `localhost`: only this machine can connect."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def listen_address(value):
    """A check for `http.listen`."""
    try:
        parse_listen(value)
    except ValueError as exc:
        return str(exc)
    return None


def database_url(value):
    """A check for `database`: a SQLAlchemy URL of SQLite (a file) or PostgreSQL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except ArgumentError:
        return "is not a database URL: sqlite:////var/lib/maskdet-monitor/monitor.db or postgresql://USER@HOST/DB"
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return "SQLite needs a file (sqlite:////path/monitor.db, four slashes for an absolute path)"
        return None
    if url.get_backend_name() != "postgresql":
        return f"{url.get_backend_name()} is not supported: use sqlite or postgresql"
    if url.password is not None:
        return (f"holds a password: leave it out and put it in ${DB_PASSWORD_ENV} or the systemd "
                f"credential {DB_PASSWORD_CREDENTIAL}")
    if url.drivername not in ("postgresql", "postgresql+psycopg"):
        return "PostgreSQL is reached through psycopg 3: write postgresql:// (or postgresql+psycopg://)"
    return None


@dataclass(frozen=True)
class MqttConfig(BrokerConfig):
    """The broker: the daemon's `mqtt` keys that a subscriber needs (it subscribes to
    <prefix>/#), and its session's name."""

    client_id: str = setting("maskdet-monitor", "the persistent session's name at the broker: one "
                             "per monitor, kept across restarts", client_id)


@dataclass(frozen=True)
class HttpConfig:
    """The dashboard and the JSON API."""

    listen: str = setting("127.0.0.1:8090", "HOST:PORT; beyond loopback a token is required",
                          listen_address)
    token_env: str = setting("MASKDET_MONITOR_TOKEN", "environment variable holding the token")
    token_credential: str = setting("monitor-token", "systemd credential holding the token")
    tls_cert_file: Optional[str] = setting(None, "HTTPS certificate (PEM); null: plain HTTP", file_path)
    tls_key_file: Optional[str] = setting(None, "HTTPS key (PEM); null: in tls_cert_file", file_path)
    session_hours: float = setting(12.0, "how long a login lasts", in_range(0.1, 24 * 30))

    def __post_init__(self):
        if self.tls_key_file and not self.tls_cert_file:
            raise ValueError("http.tls_key_file is set without tls_cert_file")


@dataclass(frozen=True)
class SnapshotConfig:
    """Snapshots (JPEG pictures of people) that devices may send on <p>/<camera>/snapshot."""

    keep: bool = setting(True, "store the snapshots devices send (they show people's faces)")
    retention_days: float = setting(7.0, "delete snapshots older than this", in_range(0.01, 3650))
    max_bytes: int = setting(1_000_000, "larger snapshots are refused", in_range(1000, 20_000_000))


@dataclass(frozen=True)
class MonitorConfig:
    """The whole monitor configuration."""

    mqtt: MqttConfig = setting(default_factory=MqttConfig, help="the broker")
    database: str = setting(DEFAULT_DATABASE, "SQLAlchemy URL: sqlite:////FILE or postgresql://USER@HOST/DB",
                            database_url)
    http: HttpConfig = setting(default_factory=HttpConfig, help="dashboard and API")
    retention_days: float = setting(90.0, "events, hourly counts and stats older than this are deleted",
                                    in_range(1, 3650))
    snapshots: SnapshotConfig = setting(default_factory=SnapshotConfig, help="event snapshots")
    log_level: str = setting("INFO", "DEBUG, INFO, WARNING or ERROR",
                             one_of("DEBUG", "INFO", "WARNING", "ERROR"))


def read_file_text(path, what):
    """A config file's text: ConfigError when it cannot be read or is not UTF-8."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}: not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}; "
                          "save the file as UTF-8") from None


def load_monitor_config(path=DEFAULT_PATH):
    """Read and validate a monitor config file (ConfigError, exit 78, names key path and line)."""
    name = os.fspath(path)
    return load_yaml(MonitorConfig, read_file_text(name, "config file"), name)


def mqtt_password(config, environ=os.environ):
    """The broker password (None: none)."""
    return read_password(config.mqtt, environ)


def http_token(config, environ=os.environ):
    """The dashboard's token (None: none)."""
    return secret(config.http.token_env, config.http.token_credential, environ)


def db_password(environ=os.environ):
    """The database password (None: none, e.g. SQLite or PostgreSQL's peer authentication)."""
    return secret(DB_PASSWORD_ENV, DB_PASSWORD_CREDENTIAL, environ)


MIN_TOKEN_LENGTH = 16


def _check_pem(filename, key, path, private=False):
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigError(f"{filename}: {key}: {path} is not a readable file")
    with open(path, "rb") as handle:
        if b"-----BEGIN" not in handle.read():
            raise ConfigError(f"{filename}: {key}: {path} is not PEM (no -----BEGIN line)")


def check_database(config, filename):
    """The database URL's driver is installed; a SQLite file's folder is writable (or, when it
    does not exist yet, the nearest folder above it is, so the service can make it). Nothing is
    created here."""
    from sqlalchemy.engine import make_url

    url = make_url(config.database)
    if url.get_backend_name() == "postgresql":
        if importlib.util.find_spec("psycopg") is None:
            raise ConfigError(f"{filename}: database: PostgreSQL needs psycopg 3: "
                              "pip install 'maskdet[monitor]'")
        return
    path = os.path.abspath(url.database)
    if os.path.isdir(path):
        raise ConfigError(f"{filename}: database: {path} is a folder; name the database file in it")
    folder = os.path.dirname(path)
    existing = folder
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{filename}: database: the folder {existing} is not writable by this user "
                          "(SQLite writes its journal beside the file)")


def sqlite_folder(config):
    """The folder of a SQLite database (made at start when missing), or None for PostgreSQL."""
    from sqlalchemy.engine import make_url

    url = make_url(config.database)
    if url.get_backend_name() != "sqlite":
        return None
    return os.path.dirname(os.path.abspath(url.database))


def check_http(config, filename, environ=os.environ):
    """Beyond loopback the dashboard shows people's events to the network: a token is required
    (and long enough); HTTPS files are readable PEM."""
    host, _ = parse_listen(config.http.listen)
    token = http_token(config, environ)
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"{filename}: http.listen: {config.http.listen} is reachable from the network, so a "
            f"token is required: put one in ${config.http.token_env} or the systemd credential "
            f"{config.http.token_credential} (e.g. openssl rand -hex 24), or listen on 127.0.0.1")
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{filename}: http: the token is shorter than {MIN_TOKEN_LENGTH} "
                          "characters; use a random one (openssl rand -hex 24)")
    if config.http.tls_cert_file:
        _check_pem(filename, "http.tls_cert_file", config.http.tls_cert_file)
        if config.http.tls_key_file:
            _check_pem(filename, "http.tls_key_file", config.http.tls_key_file)
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                config.http.tls_cert_file, config.http.tls_key_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"{filename}: http.tls_cert_file: OpenSSL cannot load the "
                              f"certificate and key: {exc}") from None


def check_mqtt(config, filename, environ=os.environ):
    """A password without a user name is refused (as the daemon refuses it); TLS files are PEM."""
    if mqtt_password(config, environ) and not config.mqtt.username:
        raise ConfigError(f"{filename}: mqtt.username: a password is set (${config.mqtt.password_env} "
                          f"or credential {config.mqtt.password_credential}) but no user name")
    tls = config.mqtt.tls
    if tls:
        for key in ("ca_file", "cert_file", "key_file"):
            if getattr(tls, key):
                _check_pem(filename, f"mqtt.tls.{key}", getattr(tls, key))


def check_monitor_config(path=DEFAULT_PATH, environ=os.environ):
    """Load the config and check everything the service needs at start (ConfigError, exit 78).
    Not config errors, since they come and go: the broker or the PostgreSQL server being down."""
    config = load_monitor_config(path)
    filename = os.fspath(path)
    check_database(config, filename)
    check_http(config, filename, environ)
    check_mqtt(config, filename, environ)
    return config


def describe(config, environ=os.environ):
    """One line about a valid config, for `--check`."""
    from sqlalchemy.engine import make_url

    url = make_url(config.database)
    where = url.database if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=True)
    token = "token set" if http_token(config, environ) else "no token (loopback only)"
    return (f"broker {config.mqtt.host}:{config.mqtt.port} prefix {config.mqtt.prefix}/#; "
            f"database {url.get_backend_name()} {where}; http {config.http.listen}, {token}; "
            f"retention {config.retention_days:g} days")
