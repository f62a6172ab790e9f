"""The dashboard in a real headless browser (Debian's Chromium, driven by playwright): it loads,
shows both devices and the chart, a new event appears without a reload, the filters work, and with
a token the login form leads to it. A screenshot is written as a test artifact."""
import os
import shutil
import tempfile
import time

import pytest

from edge.config.schema import MqttConfig
from edge.service import payloads as daemon_payloads
from edge.service.publisher import Publisher
from tests.monitor.conftest import get_json, wait_until, write_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "browser-test-token-0123456789"


@pytest.fixture
def browser():
    """(a new-page factory, the page errors seen, playwright's expect) of a Chromium with a fresh
    profile, closed after the test."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Chromium (apt-get install chromium; tools/setup.sh --dev installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    profile = tempfile.mkdtemp(prefix="maskdet-chromium-")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900})
        errors = []

        def page():
            pg = context.new_page()
            pg.on("pageerror", lambda exc: errors.append(str(exc)))
            pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            return pg

        yield page, errors, sync_api.expect
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


def publishers(broker, tmp_path):
    """Two of the daemon's Publishers, as two doors, each with a state and an event."""
    pubs = []
    for device, alert in (("pi-a", False), ("pi-b", True)):
        config = MqttConfig(host=broker.host, port=broker.port, outbox_path=str(tmp_path / f"{device}.db"))
        pub = Publisher(config, device, ["door"])
        pub.start()
        assert pub.connected.wait(10)
        pub.publish_state("door", daemon_payloads.state(alert, 2, int(alert), 1, 12.5, "cpu", True))
        pub.publish_event("door", daemon_payloads.event("no_mask" if alert else "mask", "door", 1, 0.93,
                                                        (5, 5, 50, 50), device))
        pubs.append(pub)
    return pubs


def test_the_page_shows_both_devices_and_a_new_event_without_a_reload(broker, tmp_path, start_monitor, browser,
                                                                      capsys):
    new_page, errors, expect = browser
    monitor = start_monitor(write_config(tmp_path, broker))
    assert monitor.connected()
    pubs = publishers(broker, tmp_path)
    assert wait_until(lambda: monitor.ingest.status.stored_events == 2)
    assert wait_until(lambda: len([c for d in get_json(f"{monitor.url}/api/devices")["devices"]
                                   for c in d["cameras"] if c["state_time"]]) == 2)
    page = new_page()
    started = time.monotonic()
    page.goto(monitor.url)
    page.wait_for_selector("body[data-ready='1']", timeout=15000)
    print(f"page ready in {time.monotonic() - started:.2f} s")
    for device in ("pi-a", "pi-b"):
        assert page.locator(f"article[data-device='{device}']").count() == 1
    assert "ALERT" in page.locator("article[data-device='pi-b']").inner_text()
    assert page.locator("#events tbody tr").count() == 2
    assert page.locator("#chart svg rect.bar-seen").count() >= 2
    # (no wait_for_function: its polling evaluates strings, which the page's CSP forbids)
    expect(page.locator("#feed-status")).to_have_text("live", timeout=10000)

    page.evaluate("window.notReloaded = true")
    fresh = pubs[1].publish_event("door", daemon_payloads.event(
        "no_mask", "door", 2, 0.88, (1, 1, 9, 9), "pi-b", reason="mask_below_nose"))
    page.wait_for_selector(f"#events tr[data-id='{fresh['id']}']", timeout=10000)
    # the kind of no mask the event names is shown, in the table and on the camera's card
    row = page.locator(f"#events tr[data-id='{fresh['id']}']")
    assert "no mask (below the nose)" in row.inner_text()
    expect(page.locator("article[data-device='pi-b']")).to_contain_text("no mask (below the nose)",
                                                                       timeout=10000)
    assert page.evaluate("window.notReloaded") is True
    assert page.locator("#events tbody tr").first.get_attribute("data-id") == fresh["id"]
    shot = tmp_path / "monitor-dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    with capsys.disabled():  # shown whatever the capture mode
        print(f"\nscreenshot of the dashboard: {shot}")
    assert shot.stat().st_size > 10_000

    # Filters: only pi-a's events, and pi-b's new ones stay out; the CSV link follows.
    page.select_option("#filters select[name=device]", "pi-a")
    page.click("#filters button[type=submit]")
    expect(page.locator("#events tbody tr")).to_have_count(1, timeout=10000)
    other = pubs[1].publish_event("door", daemon_payloads.event("mask", "door", 3, 0.9, (1, 1, 9, 9), "pi-b"))
    assert wait_until(lambda: monitor.ingest.status.stored_events == 4)
    page.wait_for_timeout(500)
    assert page.locator(f"#events tr[data-id='{other['id']}']").count() == 0
    assert "device=pi-a" in page.locator("#csv").get_attribute("href")
    assert not errors, errors
    for pub in pubs:
        pub.close()
    page.wait_for_selector("article.device.offline[data-device='pi-a']", timeout=10000)


def test_with_a_token_the_login_form_leads_to_the_dashboard(tmp_path, start_monitor, browser):
    new_page, errors, _ = browser
    monitor = start_monitor(write_config(tmp_path), environ={"MASKDET_MONITOR_TOKEN": TOKEN})
    page = new_page()
    page.goto(monitor.url)
    assert page.url.endswith("/login")
    page.fill("input[name=token]", "wrong")
    page.click("button[type=submit]")
    assert "not the token" in page.inner_text("body")
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready='1']", timeout=15000)
    assert not page.locator("#logout").is_hidden()
    page.click("#logout button")
    page.wait_for_url("**/login")
    assert [e for e in errors if "401" not in e] == []
