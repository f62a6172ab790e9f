"""Reaching the broker with paho-mqtt 2.x, the same way from the daemon's publisher, the monitor and
`maskdet doctor`: the password (never from the config file), login and TLS, a client that keeps
why its last connection attempt failed, that cause in words a person can act on, and `guarded`
for paho callbacks. paho is imported only when a client is made."""
import functools
import logging
import os
import socket
import ssl

from edge.errors import ConfigError

log = logging.getLogger(__name__)


def secret(env_name, credential, environ=os.environ):
    """A secret from the environment variable, else the systemd credential file
    ($CREDENTIALS_DIRECTORY/<credential>); None when neither holds one. Never from a config
    file; ConfigError when the credential exists but cannot be read."""
    if env_name and environ.get(env_name, "").strip():
        return environ[env_name].strip()
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory and credential:
        path = os.path.join(directory, credential)
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as handle:
                    return handle.read().strip() or None
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"credential {path} cannot be read: "
                                  f"{getattr(exc, 'strerror', None) or exc}") from None
    return None


def read_password(broker, environ=os.environ):
    """The broker password of a BrokerConfig (None: none)."""
    return secret(broker.password_env, broker.password_credential, environ)


def guarded(method):
    """Log, never raise, from a paho callback."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception:
            log.exception("error in MQTT callback %s", method.__name__)
    return wrapper


@functools.lru_cache(maxsize=None)
def client_class():
    """paho's Client, remembering why its last connection attempt failed.

    paho 2.x calls `on_connect_fail(client, userdata)` without the exception: its network loop
    catches the OSError of `reconnect()` (a refused TCP connection, an
    `ssl.SSLCertVerificationError` ...) and drops it. This subclass keeps it in
    `last_connect_error` for the callback, which paho runs right after, in the same thread."""
    import paho.mqtt.client as mqtt

    class RememberingClient(mqtt.Client):
        """A paho Client whose `last_connect_error` is the OSError of the last failed attempt."""

        last_connect_error = None

        def reconnect(self):
            try:
                result = super().reconnect()
            except OSError as exc:
                self.last_connect_error = exc
                raise
            self.last_connect_error = None
            return result

    return RememberingClient


def make_client(broker, client_id, clean_session=True, **options):
    """A paho client (of `client_class`) for a BrokerConfig: MQTT 3.1.1, callback API 2, the
    login and TLS of the config. ConfigError for a password without a user name."""
    import paho.mqtt.client as mqtt

    client = client_class()(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                            clean_session=clean_session, **options)
    password = read_password(broker)
    if broker.username:
        client.username_pw_set(broker.username, password)
    elif password:
        raise ConfigError("an MQTT password is set but mqtt.username is empty")
    if broker.tls:
        client.tls_set(ca_certs=broker.tls.ca_file, certfile=broker.tls.cert_file,
                       keyfile=broker.tls.key_file)
        client.tls_insecure_set(broker.tls.insecure)
    return client


# OpenSSL's verify codes (X509_V_ERR_*) that call for a different fix than a missing CA
_NOT_VALID_NOW = {9, 10}  # CERT_NOT_YET_VALID, CERT_HAS_EXPIRED
_NAME_MISMATCH = {62, 64}  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH


def _certificate_problem(exc, tls):
    """The cause and the fix for a certificate that failed verification."""
    detail = f"certificate verify failed: {exc.verify_message}" if exc.verify_message else str(exc)
    if exc.verify_code in _NAME_MISMATCH:
        return (f"TLS host name mismatch ({detail}): set mqtt.host to a name or address the "
                "broker's certificate holds (mqtt.tls.insecure skips this check, for testing only)")
    if exc.verify_code in _NOT_VALID_NOW:
        return (f"TLS certificate not valid now ({detail}): check this device's clock (a Pi has "
                "no battery clock: is NTP synchronised?) and the certificate's dates")
    if tls is not None and tls.ca_file:
        return (f"TLS certificate not trusted ({detail}): mqtt.tls.ca_file {tls.ca_file} did not "
                "sign the broker's certificate; set mqtt.tls.ca_file to the broker's CA")
    return (f"TLS certificate not trusted ({detail}): set mqtt.tls.ca_file to the broker's CA "
            "(the system's CAs do not trust it)")


def connect_failure(exc, tls=None):
    """Why a connection attempt failed and what to do, in words for the log; `exc` is what paho's
    `reconnect()` raised (None: unknown), `tls` the TlsConfig (None: plain TCP)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _certificate_problem(exc, tls)
    if isinstance(exc, ssl.SSLError):
        return (f"TLS handshake failed ({exc.reason or exc}): is this port the broker's TLS "
                "listener, and does it want a client certificate (mqtt.tls.cert_file)?")
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: is the broker running and listening on this port?"
    if isinstance(exc, socket.gaierror):
        return f"host name not found ({exc.strerror or exc}): check mqtt.host and DNS"
    if isinstance(exc, (TimeoutError, socket.timeout)):  # distinct classes before Python 3.10
        return "no answer (timed out): check the address, the network and any firewall"
    if exc is not None:
        return f"cannot reach the broker ({exc.strerror or exc})"
    return "cannot reach the broker"
