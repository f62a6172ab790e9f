"""The device's health readings on stand-in sysfs / procfs files and a stand-in vcgencmd; null
where a machine cannot tell, never an exception."""
import os
import stat
import time

import jsonschema

from edge.service import health, payloads


def zone(root, name, kind, millidegrees):
    path = root / name
    path.mkdir(parents=True)
    (path / "type").write_text(kind + "\n")
    (path / "temp").write_text(f"{millidegrees}\n")


def test_the_cpu_zone_is_preferred_and_read_in_degrees(tmp_path):
    zone(tmp_path, "thermal_zone0", "acpitz", 27800)
    zone(tmp_path, "thermal_zone1", "cpu-thermal", 61234)
    assert health.cpu_temperature(str(tmp_path)) == 61.2


def test_no_thermal_zone_is_unknown(tmp_path):
    assert health.cpu_temperature(str(tmp_path / "absent")) is None
    zone(tmp_path, "thermal_zone0", "cpu-thermal", "garbage")
    assert health.cpu_temperature(str(tmp_path)) is None


def test_the_throttling_word_is_decoded():
    decoded = health.decode_throttled(0x50005)
    assert decoded == {"raw": 0x50005, "now": ["under_voltage", "throttled"],
                       "since_boot": ["under_voltage", "throttled"]}
    assert health.decode_throttled(0) == {"raw": 0, "now": [], "since_boot": []}


def test_throttling_from_sysfs_then_vcgencmd_else_unknown(tmp_path):
    sysfs = tmp_path / "get_throttled"
    sysfs.write_text("80008\n")
    assert health.throttling([str(sysfs)], vcgencmd="")["now"] == ["soft_temperature_limit"]
    fake = tmp_path / "vcgencmd"
    fake.write_text("#!/bin/sh\necho throttled=0x4\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    assert health.throttling([str(tmp_path / "none")], vcgencmd=str(fake))["now"] == ["throttled"]
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho 'VCHI initialization failed' >&2\nexit 255\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    assert health.throttling([], vcgencmd=str(broken)) is None
    assert health.throttling([], vcgencmd=str(tmp_path / "not-there")) is None
    assert health.throttling([str(tmp_path / "none")], vcgencmd="") is None


def test_here_every_reading_is_a_value_or_null_and_matches_the_stats_schema(tmp_path):
    reading = health.read_health(str(tmp_path / "deep" / "missing" / "outbox.db"))
    assert reading["disk_free_mb"] > 0  # the nearest existing folder's file system
    assert reading["memory"]["total_mb"] > 0 and len(reading["load"]) == 3
    assert reading["throttled"] is None  # not a Raspberry Pi (no vcgencmd here)
    stats = payloads.stats({}, {}, 0, 0, 1.0, health=reading)
    jsonschema.validate(stats, payloads.load_schema("stats"))
    assert health.read_health(":memory:")["disk_free_mb"] is None


def test_a_reading_that_fails_oddly_is_unknown(monkeypatch):
    def boom():
        raise RuntimeError("odd")

    monkeypatch.setattr(health, "load_average", boom)
    assert health.read_health("/tmp/x.db")["load"] is None


def test_the_reader_thread_keeps_the_last_reading_and_survives_failures(caplog):
    calls = []

    def read(path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("sysfs went away")
        return {"n": len(calls)}

    reader = health.HealthReader("/x/outbox.db", interval_s=0.01, read=read).start()
    deadline = time.monotonic() + 10
    while len(calls) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    reader.stop()
    assert len(calls) >= 4 and reader.latest["n"] >= 3
    assert caplog.text.count("reading the device health failed") == 1
    assert os.path.basename(calls[0]) == "outbox.db"
