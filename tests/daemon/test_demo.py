"""The README's first run, `maskdet run --config systemd/demo.yaml` from the repository root:
it works from a fresh clone (no runs/ folder, nothing written), and a run never replays an earlier
run's events (its outbox is in memory)."""
import json
import os
import subprocess
import sys
import time

from edge.config import load_config
from edge.paths import REPO_ROOT, shared_dir
from tests.conftest import Broker, Subscriber, shared_path

DEMO = os.path.join(REPO_ROOT, "systemd", "demo.yaml")


def fresh_clone(tmp_path, broker):
    """A folder laid out as a fresh clone beside ../shared, holding only systemd/demo.yaml (its
    broker moved to the test's mosquitto)."""
    shared_path("data", "videos", "putting_on_mask.mp4")
    clone = tmp_path / "clone"
    (clone / "systemd").mkdir(parents=True)
    (tmp_path / "shared").symlink_to(shared_dir())
    with open(DEMO, encoding="utf-8") as handle:
        text = handle.read()
    (clone / "systemd" / "demo.yaml").write_text(
        text.replace("host: localhost", f"host: {broker.host}\n  port: {broker.port}"))
    return clone


def run_demo(clone):
    """`maskdet run --config systemd/demo.yaml` in the clone, to the end of the video."""
    return subprocess.run([sys.executable, "-m", "edge.cli", "run", "--config", "systemd/demo.yaml"],
                          cwd=clone, capture_output=True, text=True, timeout=300)


def test_the_demo_keeps_its_outbox_in_memory():
    assert load_config(DEMO).mqtt.outbox_path == ":memory:"


def test_the_demo_runs_from_a_fresh_clone_and_never_replays_an_earlier_run(tmp_path):
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker")  # not started: the first run finds no broker
    clone = fresh_clone(tmp_path, broker)
    first = run_demo(clone)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "no_mask" in first.stderr and "every source has ended" in first.stderr
    broker.start()
    try:
        sub = Subscriber(broker, "maskdet/demo/#")
        second_started = time.time()
        second = run_demo(clone)
        assert second.returncode == 0, second.stderr[-3000:]
        got = sub.wait_for(lambda m: m and m[-1][1] == "offline")
        sub.close()
    finally:
        broker.stop()
    events = [json.loads(p) for t, p, _ in got if t.endswith("/event")]
    assert events, "the second run's events did not arrive"
    assert all(e["time"] >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second_started))
               for e in events), [e["time"] for e in events]  # nothing of the first run
    assert sorted(p.name for p in clone.rglob("*")) == ["demo.yaml", "systemd"]  # nothing written
