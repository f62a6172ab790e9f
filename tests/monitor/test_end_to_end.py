"""The real thing: two `maskdet run` daemons on the shared videos publish as two devices through a
real mosquitto, and `maskdet monitor` (a process, as systemd runs it) stores what they publish.
The monitor is killed (SIGKILL) and restarted, and the broker goes down and comes back, while the
daemons run: every event a witness subscriber saw is stored once, availability follows the daemons
stopping, and the alert of the door where a person puts a mask on is seen raised and cleared."""
import json
import signal
import socket
import subprocess
import sys
import threading
import time

from tests.conftest import REPO_ROOT, Broker, Subscriber, shared_path
from tests.monitor.conftest import free_port, get_json, start_process, wait_until, write_config

VIDEOS = {"pi-a": "one_unmasked.mp4", "pi-b": "putting_on_mask.mp4"}


def daemon_config(tmp_path, device, broker):
    video = shared_path("data", "videos", VIDEOS[device])
    path = tmp_path / f"{device}.yaml"
    path.write_text(f"""device_id: {device}
cameras:
  - name: door
    source: {{type: opencv, url: {video}, fps: 25, realtime: true, loop: true}}
decision: {{alert_clear_s: 1.0}}
mqtt:
  host: {broker.host}
  port: {broker.port}
  keepalive_s: 5
  outbox_path: {tmp_path / f'outbox-{device}.db'}
  stats_interval_s: 1
log_level: INFO
""")
    return path


def start_daemon(config):
    log = open(f"{config}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
                            cwd=REPO_ROOT, stdout=log, stderr=log)


class Notifications(threading.Thread):
    """The NOTIFY_SOCKET of the monitor processes, read as systemd reads it."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.path = path
        self.messages = []
        self.start()

    def run(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except OSError:
                return

    def wait(self, wanted="READY=1", after=0, timeout=30):
        """Wait for a message holding `wanted` among those from index `after` on."""
        return wait_until(lambda: any(wanted in m for m in self.messages[after:]), timeout=timeout)


class Watcher(threading.Thread):
    """Polls /api/devices, remembering each camera's alert as the monitor showed it."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.seen, self.stop = url, [], threading.Event()

    def run(self):
        while not self.stop.wait(0.1):
            try:
                devices = get_json(f"{self.url}/api/devices")["devices"]
            except Exception:  # the monitor is down for a while: on purpose
                continue
            for d in devices:
                for c in d["cameras"]:
                    self.seen.append((d["device"], d["online"], c["alert"], c["alert_since"], c["alert_cleared"]))


def stored(url):
    events, cursor = [], None
    while True:
        page = get_json(f"{url}/api/events?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
        events += page["events"]
        cursor = page["next"]
        if not cursor:
            return events


def test_two_daemons_a_monitor_restart_and_a_broker_outage(tmp_path):
    for video in VIDEOS.values():
        shared_path("data", "videos", video)
    broker = Broker(tmp_path, persistence=True).start()
    witness = Subscriber(broker, "maskdet/+/+/event", client_id="witness")
    port = free_port()
    config = write_config(tmp_path, broker, listen=f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}"
    ready = Notifications(tmp_path / "notify.sock")
    monitor = start_process(config, ready.path)
    daemons = {}
    watcher = Watcher(url)
    windows = {}
    try:
        assert ready.wait("READY=1")
        watcher.start()
        daemons = {d: start_daemon(daemon_config(tmp_path, d, broker)) for d in VIDEOS}
        assert wait_until(lambda: len({e["device"] for e in stored(url)}) == 2, timeout=40), \
            "both devices' first events"

        monitor.send_signal(signal.SIGKILL)  # a crash: nothing is said to the broker
        monitor.wait(10)
        windows["monitor down"] = (time.time(), None)
        time.sleep(4)
        restarted_at = len(ready.messages)
        monitor = start_process(config, ready.path)
        assert ready.wait("READY=1", after=restarted_at)
        windows["monitor down"] = (windows["monitor down"][0], time.time())
        time.sleep(2)

        broker.stop()
        windows["broker down"] = (time.time(), None)
        time.sleep(4)
        broker.start()
        windows["broker down"] = (windows["broker down"][0], time.time())
        time.sleep(4)

        for proc in daemons.values():
            proc.send_signal(signal.SIGTERM)  # drains its outbox, publishes offline
        for device, proc in daemons.items():
            assert proc.wait(60) == 0, open(tmp_path / f"{device}.yaml.log").read()[-3000:]

        published = {}
        witness.wait_for(lambda m: False, timeout=3)
        for topic, payload, _ in witness.messages:
            event = json.loads(payload)
            published[event["id"]] = event
        assert wait_until(lambda: {e["id"] for e in stored(url)} >= set(published), timeout=30)
        got = stored(url)
        assert len(got) == len({e["id"] for e in got}) == len(published), "every event once"
        assert {e["id"] for e in got} == set(published)
        for what, (start, end) in windows.items():
            during = [e for e in published.values() if start <= _epoch(e["time"]) <= end]
            assert during, f"no event was decided while the {what}: the test proves nothing"

        devices = {d["device"]: d for d in get_json(f"{url}/api/devices")["devices"]}
        assert set(devices) == set(VIDEOS)
        assert wait_until(lambda: all(d["online"] is False for d in
                                      get_json(f"{url}/api/devices")["devices"]), timeout=10)
        for d in get_json(f"{url}/api/devices")["devices"]:
            assert d["availability_since"] and d["health"]["status"] == "offline"
            assert d["stats"] and "latency_ms" in d["stats"]
        assert ready.wait("WATCHDOG=1", after=restarted_at)  # pinged while the writer lives
        assert any("STATUS=" in m and "events stored" in m for m in ready.messages), ready.messages
        # The door where the person puts a mask on: its alert raised, then cleared while running.
        seen_b = [s for s in watcher.seen if s[0] == "pi-b" and s[1] is True]
        raised = [i for i, s in enumerate(seen_b) if s[2] is True]
        assert raised, "pi-b's alert was never shown"
        cleared = [s for s in seen_b[raised[0]:] if s[2] is False]
        assert cleared and cleared[0][4] >= seen_b[raised[0]][3], (seen_b[raised[0]], cleared[:1])
        hourly = get_json(f"{url}/api/hourly")["hours"]
        assert sum(h["people"] for h in hourly) == sum(1 for e in published.values()
                                                       if e["type"] in ("mask", "no_mask"))
    finally:
        watcher.stop.set()
        for proc in daemons.values():
            if proc.poll() is None:
                proc.kill()
        if monitor.poll() is None:
            monitor.send_signal(signal.SIGTERM)
            try:
                monitor.wait(20)
            except subprocess.TimeoutExpired:
                monitor.kill()
        witness.close()
        broker.stop()
        ready.sock.close()
        print(open(f"{config}.log").read()[-4000:])
    assert monitor.returncode == 0, "SIGTERM ends the monitor with status 0"


def _epoch(iso):
    import datetime

    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
