"""`python -m monitor.bench`: the monitor under load, on loopback only, bounded in time.

1. Rates: simulated devices publish events (QoS 1) at rising rates, each rate for a fixed time;
   after each step the monitor gets a fixed time to store the rest. Measured: what it stored,
   whether every event arrived once (no loss), and the lag at the end of the step. The highest
   rate it keeps up with is the number that matters.
2. Soak: a steady site (doors publishing events, state and stats) for some minutes while the
   monitor's memory (VmRSS) is sampled.
3. A year: a database holding a year of events for 50 doors, made directly; then the API's and
   the page's load times against it (the page in headless Chromium when playwright is there).

A mosquitto and `maskdet monitor` are started as processes (127.0.0.1, free ports) and stopped at
the end. Results go to a JSON file and to the monitor's section of BENCHMARKS.md (replaced, the
rest of the file kept).
"""
import argparse
import datetime
import json
import logging
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

from edge.errors import MaskdetError
from edge.machine import describe_machine

log = logging.getLogger(__name__)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION_START = "<!-- monitor-bench:start -->"
SECTION_END = "<!-- monitor-bench:end -->"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


# --- processes -----------------------------------------------------------------------------

def free_port():
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """mosquitto on 127.0.0.1 with a generous queue for the monitor's session."""

    def __init__(self, work):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(exe):
            raise MaskdetError("the benchmark needs mosquitto (apt-get install mosquitto)")
        self.port = free_port()
        conf = os.path.join(work, "mosquitto.conf")
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence false",
                 "max_queued_messages 1000000", "max_inflight_messages 100"]
        if os.geteuid() == 0:
            lines.append("user root")
        with open(conf, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        """Stop it."""
        self.proc.terminate()
        self.proc.wait(10)


def wait_port(port, timeout=20.0):
    """Wait until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise MaskdetError(f"nothing listens on 127.0.0.1:{port}")


class MonitorProcess:
    """`maskdet monitor` as a process on a config of its own."""

    def __init__(self, work, broker_port, database, retention_days=3650):
        self.http_port = free_port()
        self.config = os.path.join(work, "monitor.yaml")
        with open(self.config, "w", encoding="utf-8") as handle:
            handle.write(f"mqtt: {{host: 127.0.0.1, port: {broker_port}, client_id: bench-monitor}}\n"
                         f"database: {database}\nhttp: {{listen: '127.0.0.1:{self.http_port}'}}\n"
                         f"retention_days: {retention_days}\nlog_level: WARNING\n")
        self.log = open(os.path.join(work, "monitor.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "monitor", "--config", self.config],
                                     cwd=REPO, stdout=self.log, stderr=self.log)
        wait_port(self.http_port, 60)
        self.url = f"http://127.0.0.1:{self.http_port}"

    def get(self, path):
        """(seconds, JSON or bytes) of a GET."""
        started = time.perf_counter()
        with urllib.request.urlopen(self.url + path, timeout=120) as response:
            body = response.read()
        took = time.perf_counter() - started
        return took, (json.loads(body) if response.headers.get_content_type() == "application/json" else body)

    def health(self):
        """/api/health."""
        return self.get("/api/health")[1]

    def rss_mb(self):
        """(VmRSS, VmHWM) of the process in MiB."""
        values = {}
        with open(f"/proc/{self.proc.pid}/status", encoding="utf-8") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) / 1024
        return values["VmRSS"], values["VmHWM"]

    def stop(self):
        """SIGTERM and wait."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# --- simulated devices ---------------------------------------------------------------------

def iso(ms):
    """ISO 8601 UTC with milliseconds."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Devices:
    """N simulated doors: one paho client each, publishing as the daemon does."""

    def __init__(self, port, count):
        import paho.mqtt.client as mqtt

        self.names = [f"door-{i:03d}" for i in range(count)]
        self.clients, self.seq = [], {}
        for name in self.names:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{name}")
            client.max_inflight_messages_set(100)
            client.max_queued_messages_set(0)
            client.will_set(f"maskdet/{name}/availability", "offline", qos=1, retain=True)
            client.connect("127.0.0.1", port, 30)
            client.loop_start()
            client.publish(f"maskdet/{name}/availability", "online", qos=1, retain=True)
            self.clients.append(client)
            self.seq[name] = 0

    def event(self, index, now_ms):
        """Publish one event from door `index`."""
        name = self.names[index]
        self.seq[name] += 1
        payload = {"id": uuid.uuid4().hex, "seq": self.seq[name],
                   "type": "no_mask" if random.random() < 0.2 else "mask", "camera": "door",
                   "track_id": self.seq[name], "score": round(random.uniform(0.6, 1.0), 4),
                   "box": [100, 80, 220, 230], "time": iso(now_ms), "device": name}
        return self.clients[index].publish(f"maskdet/{name}/door/event", json.dumps(payload), qos=1)

    def state(self, index, now_ms):
        """Publish door `index`'s retained state."""
        name = self.names[index]
        payload = {"alert": random.random() < 0.1, "people": self.seq[name], "without_mask": 0,
                   "in_view": random.randint(0, 3), "fps": 14.8, "accelerator": "edgetpu",
                   "camera_ok": True, "error": None, "time": iso(now_ms)}
        self.clients[index].publish(f"maskdet/{name}/door/state", json.dumps(payload), qos=1, retain=True)

    def stats(self, index, now_ms):
        """Publish door `index`'s stats."""
        name = self.names[index]
        payload = {"latency_ms": {"detect": {"median": 6.1, "p90": 7.9}, "classify": {"median": 2.2, "p90": 2.9}},
                   "dropped_frames": {"door": 0}, "outbox_depth": 0, "outbox_dropped": 0,
                   "uptime_s": 3600.0, "time": iso(now_ms)}
        self.clients[index].publish(f"maskdet/{name}/stats", json.dumps(payload), qos=0)

    def paced(self, rate, seconds, extras=True):
        """Publish events at `rate` per second over all doors for `seconds` (and state every 10 s,
        stats every 30 s per door when `extras`); returns (events sent, the achieved rate)."""
        started = time.monotonic()
        sent, next_state, next_stats = 0, started, started
        while True:
            now = time.monotonic()
            if now - started >= seconds:
                break
            due = int((now - started) * rate) + 1
            for _ in range(min(due - sent, 1000)):
                self.event(sent % len(self.names), int(time.time() * 1000))
                sent += 1
            if extras and now >= next_state:
                for i in range(len(self.names)):
                    self.state(i, int(time.time() * 1000))
                next_state = now + 10
            if extras and now >= next_stats:
                for i in range(len(self.names)):
                    self.stats(i, int(time.time() * 1000))
                next_stats = now + 30
            time.sleep(max(0.0, min(0.005, started + sent / rate - time.monotonic())))
        return sent, sent / (time.monotonic() - started)

    def close(self):
        """Disconnect every door."""
        for client in self.clients:
            client.disconnect()
            client.loop_stop()


# --- 1. rates --------------------------------------------------------------------------------

def wait_stored(monitor, target, timeout):
    """Wait until the monitor has stored `target` events; (stored, seconds waited)."""
    started = time.monotonic()
    stored = monitor.health()["ingest"]["stored_events"]
    while stored < target and time.monotonic() - started < timeout:
        time.sleep(0.2)
        stored = monitor.health()["ingest"]["stored_events"]
    return stored, time.monotonic() - started


def bench_rates(monitor, devices, rates, step_s, drain_s):
    """Each rate for step_s seconds; what was stored, the lag, whether it kept up."""
    rows, total = [], monitor.health()["ingest"]["stored_events"]
    for rate in rates:
        before = time.monotonic()
        sent, achieved = devices.paced(rate, step_s, extras=False)
        at_end = monitor.health()["ingest"]["stored_events"] - total
        stored, waited = wait_stored(monitor, total + sent, drain_s)
        stored -= total
        total += stored
        took = time.monotonic() - before
        row = {"rate": rate, "achieved_rate": round(achieved, 1), "sent": sent, "stored": stored,
               "lag_at_end": sent - at_end, "drain_s": round(waited, 2),
               "stored_per_s": round(stored / took, 1), "lost": sent - stored,
               "kept_up": stored == sent and waited <= 2.0}
        log.warning("rate %s/s: %s", rate, row)
        rows.append(row)
        if stored != sent:
            break  # beyond what it can take: no use going higher
    health = monitor.health()["ingest"]
    return {"steps": rows, "duplicates": health["duplicates"], "rejected": health["rejected"],
            "sustained_rate": max([r["achieved_rate"] for r in rows if r["kept_up"]] or [0])}


# --- 2. soak ---------------------------------------------------------------------------------

def bench_soak(monitor, devices, minutes, rate):
    """A steady site for `minutes`; the monitor's memory every 10 s."""
    samples, started = [], time.monotonic()
    sent_total = 0
    before = monitor.health()["ingest"]["stored_events"]
    while time.monotonic() - started < minutes * 60:
        sent, _ = devices.paced(rate, 10, extras=True)
        sent_total += sent
        rss, hwm = monitor.rss_mb()
        samples.append({"t_s": round(time.monotonic() - started), "rss_mb": round(rss, 1)})
    stored, _ = wait_stored(monitor, before + sent_total, 30)
    rss = [s["rss_mb"] for s in samples]
    first = rss[min(6, len(rss) - 1)]  # after a minute of warm-up
    return {"minutes": minutes, "rate": rate, "doors": len(devices.names), "events": sent_total,
            "stored": stored - before, "rss_mb_start": rss[0], "rss_mb_after_1_min": first,
            "rss_mb_end": rss[-1], "rss_mb_max": max(rss), "peak_hwm_mb": round(monitor.rss_mb()[1], 1),
            "growth_after_warmup_mb": round(rss[-1] - first, 1), "samples": samples}


# --- 3. a year of events -------------------------------------------------------------------

def daily_profile():
    """Share of a day's people per hour: an entrance busy in the morning, at noon and at 17 h."""
    weights = [0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 2, 6, 10, 7, 5, 5, 8, 7, 5, 5, 6, 9, 6, 3, 2, 1, 0.6, 0.4]
    total = sum(weights)
    return [w / total for w in weights]


def make_year(url, doors, people_per_day, now_ms, seed=1):
    """Fill a new database with a year of events for `doors` doors (through the store's schema and
    migrations); returns (events written, seconds)."""
    from monitor.store import Store

    rng = random.Random(seed)
    store = Store.open(url)
    started = time.monotonic()
    profile = daily_profile()
    start_day = (now_ms - 365 * DAY_MS) // DAY_MS * DAY_MS
    names = [f"door-{i:03d}" for i in range(doors)]
    written = 0
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        for name in names:
            cur.execute("INSERT INTO devices (name, online, availability_ms, first_seen_ms, last_seen_ms) "
                        "VALUES (?, ?, ?, ?, ?)", (name, True, now_ms, start_day, now_ms))
            state = json.dumps({"alert": False, "people": 0, "without_mask": 0, "in_view": 0, "fps": 14.9,
                                "accelerator": "edgetpu", "camera_ok": True, "error": None, "time": iso(now_ms)})
            cur.execute("INSERT INTO cameras (device, name, state, state_ms, alert) VALUES (?, 'door', ?, ?, 0)",
                        (name, state, now_ms))
        for day in range(365):
            rows = []
            for name in names:
                for hour, share in enumerate(profile):
                    n = int(rng.gauss(people_per_day * share, max(1.0, (people_per_day * share) ** 0.5)))
                    for _ in range(max(0, n)):
                        at = start_day + day * DAY_MS + hour * HOUR_MS + rng.randrange(HOUR_MS)
                        if at > now_ms:
                            continue
                        kind = "no_mask" if rng.random() < 0.15 else "mask"
                        eid = uuid.UUID(int=rng.getrandbits(128)).hex
                        payload = (f'{{"id":"{eid}","seq":{written},"type":"{kind}","camera":"door",'
                                   f'"track_id":1,"score":0.93,"box":[100,80,220,230],'
                                   f'"time":"{iso(at)}","device":"{name}"}}')
                        rows.append((eid, name, "door", kind, written, 1, 0.93, at, at + 40, payload))
                        written += 1
            cur.executemany("INSERT INTO events (id, device, camera, type, seq, track_id, score, time_ms, "
                            "received_ms, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            raw.commit()
        cur.execute("INSERT INTO hourly (device, camera, hour, people, without_mask) "
                    "SELECT device, camera, time_ms / 3600000, COUNT(*), "
                    "SUM(CASE WHEN type = 'no_mask' THEN 1 ELSE 0 END) FROM events "
                    "GROUP BY device, camera, time_ms / 3600000")
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
        store.close()
    return written, time.monotonic() - started


def page_load_times(url, runs=3):
    """Seconds from navigation until the page has drawn everything (body[data-ready]), in headless
    Chromium; None when playwright or Chromium is missing."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not os.path.exists(chromium):
        return None
    times = []
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, viewport={"width": 1280, "height": 900},
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        for _ in range(runs):
            page = context.new_page()
            started = time.perf_counter()
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", timeout=120_000)
            times.append(time.perf_counter() - started)
            page.close()
        context.close()
    shutil.rmtree(profile, ignore_errors=True)
    return times


def bench_year(work, broker_port, doors, people_per_day):
    """A year of events for `doors` doors; the API's and the page's times against it."""
    db_file = os.path.join(work, "year.db")
    now_ms = int(time.time() * 1000)
    written, made_s = make_year(f"sqlite:///{db_file}", doors, people_per_day, now_ms)
    log.warning("a year: %d events in %.0f s", written, made_s)
    monitor = MonitorProcess(os.path.join(work, "year"), broker_port, f"sqlite:///{db_file}")
    try:
        day_ago = iso(now_ms - DAY_MS)
        week_ago = iso(now_ms - 7 * DAY_MS)
        month_ago = iso(now_ms - 30 * DAY_MS)
        calls = {
            "/api/devices": "/api/devices",
            "/api/events?limit=50": "/api/events?limit=50",
            "/api/events?device=door-007&limit=50": "/api/events?device=door-007&limit=50",
            "/api/events?type=no_mask&since=30 days ago&limit=50":
                f"/api/events?type=no_mask&since={month_ago}&limit=50",
            "/api/hourly (24 h, all doors)": f"/api/hourly?since={day_ago}",
            "/api/hourly (7 days, all doors)": f"/api/hourly?since={week_ago}",
            "/api/events.csv (one door, one day)": f"/api/events.csv?device=door-007&since={day_ago}",
        }
        api = {}
        for label, path in calls.items():
            monitor.get(path)  # warm
            runs = [monitor.get(path)[0] for _ in range(3)]
            api[label] = round(statistics.median(runs) * 1000, 1)
        page = page_load_times(monitor.url)
        rss, _ = monitor.rss_mb()
    finally:
        monitor.stop()
    return {"doors": doors, "people_per_door_day": people_per_day, "events": written,
            "generation_s": round(made_s), "database_mb": round(os.path.getsize(db_file) / 2**20),
            "api_ms": api, "page_load_s": [round(t, 2) for t in page] if page else None,
            "monitor_rss_mb": round(rss, 1)}


# --- the report ----------------------------------------------------------------------------

def markdown(results):
    """The BENCHMARKS.md section."""
    out = [SECTION_START, "## The central monitor under load (`python -m monitor.bench`)",
           f"Made on {results['date']}: {results['machine']}; mosquitto, the monitor (`maskdet monitor`, "
           f"SQLite in WAL mode, synchronous FULL) and the simulated doors all on this machine, "
           "over loopback. Raw numbers: `benchmarks/monitor.json`.", ""]
    rates = results.get("rates")
    if rates:
        out += [f"### Events stored per second ({rates['doors']} doors, QoS 1, {rates['step_s']} s per step)",
                "Each event is committed before the broker hears its acknowledgement. *Kept up*: "
                "every event stored, and the last one within 2 s of the step's end.", "",
                "| asked / s | published / s | sent | stored | behind at the step's end | "
                "drained in s | kept up |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in rates["steps"]:
            out.append(f"| {r['rate']:g} | {r['achieved_rate']:g} | {r['sent']} | {r['stored']} | "
                       f"{r['lag_at_end']} | {r['drain_s']} | {'yes' if r['kept_up'] else 'no'} |")
        out += ["", f"Sustained without loss: **{rates['sustained_rate']:.0f} events/s** (the highest "
                    "rate kept up with; above it nothing is lost either, the broker holds the rest "
                    "until the monitor catches up); "
                    f"duplicates stored: 0 (left out: {rates['duplicates']}); events lost: "
                    f"{sum(r['lost'] for r in rates['steps'])}.", ""]
    soak = results.get("soak")
    if soak:
        out += [f"### Memory over {soak['minutes']:g} minutes",
                f"Right after the rate steps, {soak['doors']} doors, {soak['rate']:g} events/s in all, state "
                f"every 10 s and stats every 30 s per door: {soak['events']} events sent, {soak['stored']} "
                f"stored. The monitor's resident memory, sampled every 10 s: {soak['rss_mb_start']} MiB "
                f"at the first sample, {soak['rss_mb_after_1_min']} MiB "
                f"after a minute, {soak['rss_mb_end']} MiB at the end (max {soak['rss_mb_max']} MiB): "
                f"{soak['growth_after_warmup_mb']:+} MiB after the warm-up.", ""]
    year = results.get("year")
    if year:
        out += [f"### A year of events for {year['doors']} doors",
                f"{year['events']:,} events ({year['people_per_door_day']} people per door and day, "
                f"busiest in the morning, at noon and at 17 h), a {year['database_mb']} MiB SQLite "
                f"file (written directly in {year['generation_s']} s). Median of three requests:", "",
                "| request | ms |", "| --- | --- |"]
        out += [f"| `{label}` | {ms} |" for label, ms in year["api_ms"].items()]
        page = year["page_load_s"]
        out += ["", ("The page, in headless Chromium, from navigation until the doors, the chart (24 h) "
                     f"and the events are drawn: {', '.join(f'{t} s' for t in page)} (three loads)."
                     if page else "The page's load time was not measured (no playwright or Chromium)."),
                f"The monitor's memory serving it: {year['monitor_rss_mb']} MiB.", ""]
    out.append(SECTION_END)
    return "\n".join(out) + "\n"


def write_markdown(path, section):
    """Replace the monitor's section of `path` (or append it)."""
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n"
    if SECTION_START in text and SECTION_END in text:
        head, rest = text.split(SECTION_START, 1)
        text = head + section.rstrip("\n") + rest.split(SECTION_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m monitor.bench", description=__doc__.split("\n")[0])
    p.add_argument("--doors", type=int, default=50, help="simulated doors (paho clients)")
    p.add_argument("--rates", default="100,200,400,800,1200,1600,2000,2400,3200", help="events per second, in order")
    p.add_argument("--step-s", type=float, default=10.0, help="seconds per rate")
    p.add_argument("--drain-s", type=float, default=30.0, help="seconds the monitor gets to catch up")
    p.add_argument("--soak-minutes", type=float, default=10.0, help="0: no soak")
    p.add_argument("--soak-rate", type=float, default=20.0, help="events per second during the soak")
    p.add_argument("--year-doors", type=int, default=50, help="0: no year")
    p.add_argument("--year-people", type=int, default=100, help="people per door and day")
    p.add_argument("--json", default=os.path.join(REPO, "benchmarks", "monitor.json"), help="results file")
    p.add_argument("--markdown", default=os.path.join(REPO, "BENCHMARKS.md"),
                   help="file whose monitor section is written ('' for none)")
    p.add_argument("--render", metavar="JSON", help="measure nothing: write the markdown section of "
                   "an earlier run's results file")
    return p.parse_args(argv)


def main(argv=None):
    """Run the benchmark; write the JSON and the markdown section."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    if args.render:
        with open(args.render, encoding="utf-8") as handle:
            results = json.load(handle)
        if args.markdown:
            write_markdown(args.markdown, markdown(results))
        print(markdown(results))
        return 0
    work = tempfile.mkdtemp(prefix="monitor-bench-")
    results = {"date": datetime.date.today().isoformat(), "machine": describe_machine()}
    broker = Broker(work)
    try:
        monitor = MonitorProcess(work, broker.port, f"sqlite:///{work}/bench.db")
        devices = Devices(broker.port, args.doors)
        try:
            time.sleep(1)
            rates = bench_rates(monitor, devices, [float(r) for r in args.rates.split(",")], args.step_s,
                                args.drain_s)
            results["rates"] = dict(rates, doors=args.doors, step_s=args.step_s)
            if args.soak_minutes > 0:
                results["soak"] = bench_soak(monitor, devices, args.soak_minutes, args.soak_rate)
        finally:
            devices.close()
            monitor.stop()
        if args.year_doors > 0:
            os.makedirs(os.path.join(work, "year"), exist_ok=True)
            results["year"] = bench_year(work, broker.port, args.year_doors, args.year_people)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)
    if args.markdown:
        write_markdown(args.markdown, markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
