"""Fixtures of the monitor's tests: a real PostgreSQL (Debian's binaries, a throwaway cluster),
monitor configs, a monitor running in this process (a thread with its own asyncio loop) or as a
`maskdet monitor` process, and small HTTP helpers. Nothing on the network is mocked."""
import asyncio
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import REPO_ROOT

pytest.importorskip("aiohttp")
pytest.importorskip("sqlalchemy")

PG_PASSWORD = "pg-test-password"


def free_port():
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- PostgreSQL --------------------------------------------------------------------------

def pg_bin():
    """The folder of Debian's PostgreSQL server binaries, or a skip saying what is missing."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found and shutil.which("initdb"):
        found = [shutil.which("initdb")]
    if not found:
        pytest.skip("needs PostgreSQL's server (apt-get install postgresql; tools/setup.sh --dev installs it)")
    return os.path.dirname(found[-1])


class PostgresCluster:
    """A throwaway PostgreSQL cluster on a free loopback port, password login (scram-sha-256) for
    the superuser `maskdet`. As root it runs as the `postgres` user (initdb refuses root)."""

    def __init__(self):
        self.bin = pg_bin()
        self.as_user = []
        if os.geteuid() == 0:
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root needs the postgres user (Debian's postgresql package makes it)")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.dir = tempfile.mkdtemp(prefix="maskdet-pg-")
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as handle:
            handle.write(PG_PASSWORD + "\n")
        if self.as_user:
            shutil.chown(pwfile, "postgres")
        self._run("initdb", "-D", self.data, "-A", "scram-sha-256", "-U", "maskdet",
                  f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync")
        self.start()

    def _run(self, tool, *args):
        proc = subprocess.run([*self.as_user, os.path.join(self.bin, tool), *args], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, f"{tool} failed: {proc.stdout}{proc.stderr}"

    def start(self):
        """Start the server and wait until it accepts connections."""
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w", "-o",
                  f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c synchronous_commit=off -c full_page_writes=off", "start")
        return self

    def stop(self):
        """Stop the server (fast: open sessions are ended)."""
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def url(self, database="postgres"):
        """A URL without the password (the monitor takes it from $MASKDET_DB_PASSWORD)."""
        return f"postgresql://maskdet@127.0.0.1:{self.port}/{database}"

    def new_database(self):
        """A new empty database; its URL."""
        import psycopg

        name = f"t{time.time_ns()}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user="maskdet", password=PG_PASSWORD,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def destroy(self):
        """Stop and delete the cluster."""
        try:
            self.stop()
        except AssertionError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL cluster for the session's tests (each test takes a new database)."""
    pytest.importorskip("psycopg")
    cluster = PostgresCluster()
    yield cluster
    cluster.destroy()


@pytest.fixture
def pg_password(monkeypatch):
    """The test cluster's password where the monitor reads it."""
    monkeypatch.setenv("MASKDET_DB_PASSWORD", PG_PASSWORD)
    return PG_PASSWORD


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh database of each kind: a SQLite file, a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    cluster = request.getfixturevalue("postgres")
    request.getfixturevalue("pg_password")
    return cluster.new_database()


# --- configs -----------------------------------------------------------------------------

def write_config(tmp_path, broker=None, database=None, listen=None, extra="", name="monitor.yaml",
                 client_id="maskdet-monitor-test"):
    """A monitor config file for the test's broker and database; returns its path."""
    host, port = (broker.host, broker.port) if broker else ("127.0.0.1", free_port())
    text = f"""mqtt:
  host: {host}
  port: {port}
  client_id: {client_id}
  keepalive_s: 5
database: {database or f"sqlite:///{tmp_path / 'monitor.db'}"}
http:
  listen: {listen or f"127.0.0.1:{free_port()}"}
retention_days: 30
log_level: DEBUG
{extra}"""
    path = tmp_path / name
    path.write_text(text)
    return path


# --- a monitor in this process -----------------------------------------------------------

class RunningMonitor:
    """`Monitor(config).run()` in a thread of its own with its own loop; `stop()` ends it the way
    SIGTERM does."""

    def __init__(self, config_path, environ=None):
        from monitor.config import check_monitor_config
        from monitor.service import Monitor

        environ = dict(os.environ, **(environ or {}))
        self.config = check_monitor_config(config_path, environ)
        self.monitor = Monitor(self.config, environ)
        self.loop = asyncio.new_event_loop()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while (self.monitor.ingest is None or not self.monitor.ingest._writer.is_alive()) \
                and self.error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.error:
            raise self.error
        host, port = self.config.http.listen.rsplit(":", 1)
        self.url = f"http://{host}:{port}"

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:  # signal handlers belong to the main thread: run without them
            self.loop.run_until_complete(self.monitor.run(handle_signals=False))
        except BaseException as exc:  # handed to the test
            self.error = exc

    @property
    def ingest(self):
        return self.monitor.ingest

    @property
    def store(self):
        return self.monitor.store

    def connected(self, timeout=10):
        """Wait until the MQTT session is up and subscribed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ingest.status.connected:
                time.sleep(0.3)  # the SUBACK follows the CONNACK
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        """Stop as SIGTERM does; re-raise what the run raised."""
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.monitor.stop)
            self.thread.join(30)
        if self.error:
            raise self.error


@pytest.fixture
def start_monitor():
    """start_monitor(config_path, environ=None) -> RunningMonitor, stopped after the test."""
    running = []

    def start(config_path, environ=None):
        m = RunningMonitor(config_path, environ)
        running.append(m)
        return m

    yield start
    for m in running:
        m.stop()


# --- a monitor process -------------------------------------------------------------------

def start_process(config_path, notify_path=None, env=None):
    """`maskdet monitor --config FILE` as a process (stderr to a file beside the config)."""
    full_env = dict(os.environ, **(env or {}))
    if notify_path:
        full_env.update(NOTIFY_SOCKET=str(notify_path), WATCHDOG_USEC="2000000")
    log = open(f"{config_path}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "edge.cli", "monitor", "--config", str(config_path)],
                            cwd=REPO_ROOT, stdout=log, stderr=log, env=full_env)


# --- HTTP --------------------------------------------------------------------------------

def get(url, headers=None, timeout=10):
    """(status, headers, body bytes) of a GET; no exception for 4xx / 5xx."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url, headers=None):
    """The JSON of a GET that must succeed."""
    status, _, body = get(url, headers)
    assert status == 200, (url, status, body[:500])
    return json.loads(body)


def wait_until(predicate, timeout=15.0, every=0.1):
    """Poll until predicate() is truthy; returns its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = predicate()
    return value
