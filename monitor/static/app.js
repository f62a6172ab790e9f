/* maskdet monitor: the dashboard. Plain JavaScript, no library: the devices, the filters, the
 * per-door chart (SVG drawn here) and the event list, kept current by the live feed
 * (server-sent events from /api/stream). Every name that comes from a device is put on the page
 * as text (textContent), never as markup. */
"use strict";

(function () {
  const HOUR = 3600 * 1000;
  const DAY = 24 * HOUR;
  const SVG = "http://www.w3.org/2000/svg";
  const FILTER_KEYS = ["device", "camera", "type", "since", "until"];
  const state = { filters: {}, next: null, devices: [], shown: new Set(), loading: 0 };
  const timers = {};

  // --- small helpers ------------------------------------------------------------------------
  const $ = (selector) => document.querySelector(selector);

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function debounce(name, ms, fn) {
    clearTimeout(timers[name]);
    timers[name] = setTimeout(fn, ms);
  }

  function localTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function ago(iso) {
    if (!iso) return "";
    const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 60) return `${Math.round(s)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
    return `${(s / 86400).toFixed(1)} days ago`;
  }

  // A no_mask decision may say which kind (`reason`): a mask worn below the nose is named.
  const decisionText = (type, reason) => reason === "mask_below_nose" ? "no mask (below the nose)"
    : ({ no_mask: "no mask", mask: "mask" }[type] || type);

  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401) {
      location.href = "/login";
      throw new Error("login needed");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
    return body;
  }

  function banner(message) {
    const node = $("#banner");
    node.hidden = !message;
    node.textContent = message || "";
  }

  function query(extra) {
    const params = new URLSearchParams();
    for (const key of FILTER_KEYS) if (state.filters[key]) params.set(key, state.filters[key]);
    for (const [key, value] of Object.entries(extra || {})) if (value) params.set(key, value);
    return params.toString();
  }

  // --- filters --------------------------------------------------------------------------------
  function toIso(localValue) {
    return localValue ? new Date(localValue).toISOString() : "";
  }

  function toLocalInput(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function readFilters() {
    const form = $("#filters");
    state.filters = {
      device: form.device.value, camera: form.camera.value, type: form.type.value,
      since: toIso(form.since.value), until: toIso(form.until.value),
    };
    history.replaceState(null, "", `${location.pathname}${query() ? "?" + query() : ""}`);
  }

  function filtersFromAddress() {
    const params = new URLSearchParams(location.search);
    for (const key of FILTER_KEYS) state.filters[key] = params.get(key) || "";
    const form = $("#filters");
    form.type.value = state.filters.type;
    form.since.value = toLocalInput(state.filters.since);
    form.until.value = toLocalInput(state.filters.until);
  }

  function fillSelect(select, values, chosen) {
    const keep = chosen || select.value;
    select.replaceChildren(el("option", { value: "" }, "all"),
      ...values.map((v) => el("option", { value: v }, v)));
    if (keep && !values.includes(keep)) select.append(el("option", { value: keep }, keep));
    select.value = keep || "";
  }

  function fillFilterChoices() {
    const form = $("#filters");
    fillSelect(form.device, state.devices.map((d) => d.device), state.filters.device);
    const cams = new Set();
    for (const d of state.devices) {
      if (!state.filters.device || d.device === state.filters.device) d.cameras.forEach((c) => cams.add(c.camera));
    }
    fillSelect(form.camera, [...cams].sort(), state.filters.camera);
  }

  function matches(event) {
    const f = state.filters;
    if (f.device && event.device !== f.device) return false;
    if (f.camera && event.camera !== f.camera) return false;
    if (f.type && event.type !== f.type) return false;
    const t = new Date(event.time).getTime();
    if (f.since && t < new Date(f.since).getTime()) return false;
    if (f.until && t >= new Date(f.until).getTime()) return false;
    return true;
  }

  // --- devices --------------------------------------------------------------------------------
  function fact(label, value) {
    return el("span", {}, `${label} `, el("b", {}, value));
  }

  function cameraCard(cam) {
    const alert = cam.alert
      ? el("span", { class: "badge alert" }, `ALERT since ${localTime(cam.alert_since)}`)
      : el("span", { class: "badge clear" }, cam.alert_cleared ? `clear since ${localTime(cam.alert_cleared)}` : "clear");
    const accel = cam.accelerator ? `${cam.accelerator}${cam.cause ? " (" + cam.cause + ")" : ""}` : "?";
    const last = cam.last_event
      ? `${decisionText(cam.last_event.type, cam.last_event.reason)}, ${ago(cam.last_event.time)}` : "none yet";
    return el("div", { class: "camera", "data-camera": cam.camera },
      el("div", { class: "head" }, el("span", { class: "name" }, cam.camera), alert),
      el("div", { class: "facts" },
        fact("in view", cam.in_view ?? "?"), fact("fps", cam.fps ?? "?"), fact("accelerator", accel),
        fact("last event", last),
        cam.camera_ok === false ? fact("camera", cam.cause || "no frames") : null));
  }

  function statsLine(stats) {
    if (!stats) return null;
    const parts = [];
    if (stats.uptime_s !== undefined) parts.push(fact("uptime", `${(stats.uptime_s / 3600).toFixed(1)} h`));
    parts.push(fact("outbox", `${stats.outbox_depth} waiting, ${stats.outbox_dropped} dropped`));
    const dropped = Object.values(stats.dropped_frames || {}).reduce((a, b) => a + b, 0);
    parts.push(fact("dropped frames", dropped));
    const stages = Object.entries(stats.latency_ms || {}).map(([k, v]) => `${k} ${v.median} ms`);
    if (stages.length) parts.push(fact("latency (median)", stages.join(", ")));
    return el("div", { class: "facts" }, ...parts);
  }

  function deviceCard(d) {
    const online = d.online === true ? "online" : d.online === false ? "offline" : "unknown";
    const since = d.availability_since ? ` since ${localTime(d.availability_since)}` : "";
    const problems = d.health.problems.filter((p) => p !== "offline");
    return el("article", { class: `device ${online}`, "data-device": d.device },
      el("h3", {}, el("span", { class: "name" }, d.device),
        el("span", { class: `badge ${online}` }, `${online}${since}`),
        d.online === false ? null : el("span", { class: `badge ${d.health.status}`, title: "health" }, d.health.status)),
      problems.length ? el("ul", { class: "problems" }, ...problems.map((p) => el("li", {}, p))) : null,
      statsLine(d.stats),
      ...d.cameras.map(cameraCard));
  }

  function renderDevices() {
    const box = $("#devices");
    if (!state.devices.length) {
      box.replaceChildren(el("p", { class: "empty" }, "No device has been heard from yet."));
      return;
    }
    box.replaceChildren(...state.devices.map(deviceCard));
  }

  async function loadDevices() {
    const body = await getJSON("/api/devices");
    state.devices = body.devices;
    renderDevices();
    fillFilterChoices();
  }

  // --- events ---------------------------------------------------------------------------------
  function eventRow(e, fresh) {
    const snap = e.snapshot
      ? el("a", { href: e.snapshot, target: "_blank", rel: "noopener" }, el("img", { src: e.snapshot, alt: "snapshot", loading: "lazy" }))
      : "";
    return el("tr", { "data-id": e.id, class: fresh ? "new" : null },
      el("td", { title: e.time }, localTime(e.time)),
      el("td", {}, e.device), el("td", {}, e.camera),
      el("td", {}, el("span", { class: `badge ${e.type}` }, decisionText(e.type, e.reason))),
      el("td", {}, e.score === null || e.score === undefined ? "" : `${Math.round(e.score * 100)} %`),
      el("td", { class: "snap" }, snap));
  }

  function showEvents(list, append) {
    const body = $("#events tbody");
    if (!append) {
      body.replaceChildren();
      state.shown.clear();
    }
    for (const e of list) {
      if (state.shown.has(e.id)) continue;
      state.shown.add(e.id);
      body.append(eventRow(e, false));
    }
    $("#no-events").hidden = state.shown.size > 0;
  }

  async function loadEvents(append) {
    const body = await getJSON(`/api/events?${query({ limit: 50, cursor: append ? state.next : "" })}`);
    showEvents(body.events, append);
    state.next = body.next;
    $("#more").hidden = !state.next;
  }

  function liveEvent(e) {
    if (!matches(e) || state.shown.has(e.id)) return;
    state.shown.add(e.id);
    $("#events tbody").prepend(eventRow(e, true));
    $("#no-events").hidden = true;
  }

  function liveSnapshot(link) {
    const row = document.querySelector(`#events tr[data-id="${CSS.escape(link.event)}"] td.snap`);
    if (row) row.replaceChildren(el("a", { href: link.snapshot, target: "_blank", rel: "noopener" },
      el("img", { src: link.snapshot, alt: "snapshot" })));
  }

  // --- the chart ------------------------------------------------------------------------------
  function chartWindow() {
    const until = state.filters.until ? new Date(state.filters.until).getTime() : Date.now();
    const since = state.filters.since ? new Date(state.filters.since).getTime() : until - 24 * HOUR;
    return { since, until };
  }

  function bucketSize(span) {
    if (span <= 72 * HOUR) return HOUR;
    if (span <= 62 * DAY) return DAY;
    return 7 * DAY;
  }

  function doorsShown(rows) {
    const doors = new Map();
    for (const d of state.devices) {
      if (state.filters.device && d.device !== state.filters.device) continue;
      for (const c of d.cameras) {
        if (state.filters.camera && c.camera !== state.filters.camera) continue;
        doors.set(`${d.device}/${c.camera}`, null);
      }
    }
    for (const r of rows) doors.set(`${r.device}/${r.camera}`, null);
    return [...doors.keys()].sort();
  }

  function drawChart(rows, since, until) {
    const unit = bucketSize(until - since);
    const start = Math.floor(since / unit) * unit;
    const n = Math.max(1, Math.ceil((until - start) / unit));
    const doors = doorsShown(rows);
    const series = new Map(doors.map((k) => [k, { seen: new Array(n).fill(0), without: new Array(n).fill(0) }]));
    for (const r of rows) {
      const i = Math.floor((new Date(r.hour).getTime() - start) / unit);
      const s = series.get(`${r.device}/${r.camera}`);
      if (s && i >= 0 && i < n) {
        s.seen[i] += r.people;
        s.without[i] += r.without_mask;
      }
    }
    if (doors.length > 1) {
      const all = { seen: new Array(n).fill(0), without: new Array(n).fill(0) };
      for (const s of series.values()) s.seen.forEach((v, i) => { all.seen[i] += v; all.without[i] += s.without[i]; });
      series.set("all doors", all);
      doors.unshift("all doors");
    }
    $("#chart-unit").textContent = unit === HOUR ? "hour" : unit === DAY ? "day" : "week";
    $("#chart-window").textContent = `${new Date(since).toLocaleString()} to ${new Date(until).toLocaleString()}`;
    const box = $("#chart");
    if (!doors.length) {
      box.replaceChildren(el("p", { class: "empty" }, "No door yet."));
      return;
    }
    const W = 1000, left = 170, right = 56, rowH = 38, top = 6, axis = 22;
    const plotW = W - left - right;
    const H = top + doors.length * rowH + axis;
    const step = plotW / n;
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "people per door and time" });
    doors.forEach((door, row) => {
      const s = series.get(door);
      const y0 = top + row * rowH;
      const base = y0 + rowH - 6;
      const max = Math.max(1, ...s.seen);
      const total = s.seen.reduce((a, b) => a + b, 0);
      const without = s.without.reduce((a, b) => a + b, 0);
      const label = svg("text", { x: 0, y: y0 + rowH / 2 + 4, class: "door" }, door.length > 24 ? door.slice(0, 23) + "…" : door);
      label.append(svg("title", {}, `${door}: ${total} people, ${without} without a mask`));
      chart.append(label, svg("line", { x1: left, x2: W - right, y1: base, y2: base }));
      chart.append(svg("text", { x: W - right + 4, y: y0 + 14 }, `max ${max}`));
      for (let i = 0; i < n; i++) {
        if (!s.seen[i] && !s.without[i]) continue;
        const x = left + i * step + step * 0.1;
        const w = Math.max(1, step * 0.8);
        const hSeen = (s.seen[i] / max) * (rowH - 12);
        const hWithout = (s.without[i] / max) * (rowH - 12);
        const when = new Date(start + i * unit).toLocaleString();
        const bar = svg("rect", { x, y: base - hSeen, width: w, height: hSeen, class: "bar-seen" });
        bar.append(svg("title", {}, `${door}, ${when}: ${s.seen[i]} people, ${s.without[i]} without a mask`));
        chart.append(bar);
        if (hWithout > 0) chart.append(svg("rect", { x, y: base - hWithout, width: w, height: hWithout, class: "bar-nomask" }));
      }
    });
    const every = Math.max(1, Math.ceil(n / 12));
    for (let i = 0; i < n; i += every) {
      const d = new Date(start + i * unit);
      const text = unit === HOUR ? `${String(d.getHours()).padStart(2, "0")}:00` : d.toLocaleDateString();
      chart.append(svg("text", { x: left + i * step, y: H - 6 }, text));
    }
    box.replaceChildren(chart);
  }

  async function loadChart() {
    const { since, until } = chartWindow();
    const params = new URLSearchParams({ since: new Date(since).toISOString(), until: new Date(until).toISOString() });
    if (state.filters.device) params.set("device", state.filters.device);
    if (state.filters.camera) params.set("camera", state.filters.camera);
    const body = await getJSON(`/api/hourly?${params}`);
    drawChart(body.hours, since, until);
  }

  // --- health and the live feed ---------------------------------------------------------------
  function pill(id, ok, text) {
    const node = $(id);
    node.className = `pill ${ok === true ? "ok" : ok === false ? "bad" : "warn"}`;
    node.textContent = text;
  }

  async function loadHealth() {
    const h = await getJSON("/api/health");
    pill("#broker-status", h.mqtt.connected, h.mqtt.connected ? `broker ${h.mqtt.broker}` : `broker: ${h.mqtt.problem || "connecting"}`);
    pill("#db-status", !h.database.error, h.database.error ? "database error" : `database ${h.database.backend}`);
    banner(h.database.error ? `Database error since ${localTime(h.database.error_since)}: ${h.database.error}. ` +
      "Messages wait at the broker until it is fixed." : "");
    $("#logout").hidden = !h.auth;
  }

  function connectFeed() {
    const feed = new EventSource("/api/stream");
    feed.addEventListener("hello", () => pill("#feed-status", true, "live"));
    feed.addEventListener("event", (m) => {
      liveEvent(JSON.parse(m.data));
      debounce("chart", 2000, () => loadChart().catch(report));
    });
    feed.addEventListener("snapshot", (m) => liveSnapshot(JSON.parse(m.data)));
    feed.addEventListener("devices", () => debounce("devices", 500, () => loadDevices().catch(report)));
    feed.addEventListener("reset", () => refreshAll());
    feed.onerror = () => {
      pill("#feed-status", false, "live feed: reconnecting");
      debounce("health", 3000, () => loadHealth().catch(report));
    };
  }

  function report(error) {
    console.error(error);
    banner(`The monitor did not answer: ${error.message}`);
  }

  async function refreshAll() {
    await loadDevices();
    await Promise.all([loadEvents(false), loadChart(), loadHealth()]);
  }

  function start() {
    filtersFromAddress();
    $("#filters").addEventListener("submit", (ev) => {
      ev.preventDefault();
      readFilters();
      fillFilterChoices();
      $("#csv").href = `/api/events.csv?${query()}`;
      Promise.all([loadEvents(false), loadChart()]).catch(report);
    });
    $("#filters").addEventListener("reset", () => setTimeout(() => $("#filters").requestSubmit(), 0));
    $("#filters").device.addEventListener("change", () => {
      state.filters.device = $("#filters").device.value;
      fillFilterChoices();
    });
    $("#more").addEventListener("click", () => loadEvents(true).catch(report));
    $("#csv").href = `/api/events.csv?${query()}`;
    refreshAll()
      .then(() => { document.body.dataset.ready = "1"; })
      .catch(report);
    connectFeed();
    setInterval(() => {
      renderDevices();
      loadHealth().catch(report);
    }, 30000);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
