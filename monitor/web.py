"""The dashboard and the JSON API (aiohttp). Everything the page needs is served from
`monitor/static/`: no CDN, a site may be offline.

    GET  /                      the dashboard (with a token: /login first)
    GET  /api/devices           every device with its cameras, state, last event and health
    GET  /api/events            events, newest first: device, camera, type, since, until, limit, cursor
    GET  /api/events.csv        the same filters, every matching event as CSV
    GET  /api/hourly            people seen and without a mask per door and hour: device, camera, since, until
    GET  /api/stream            the live feed (server-sent events: event, snapshot, devices, reset)
    GET  /api/snapshots/{id}    a snapshot (JPEG)
    GET  /api/health            the monitor itself: broker, database, counts
    GET|POST /login, POST /logout

Database calls are blocking: they run in the loop's thread pool. A database error is a 503 with
its reason; a bad query parameter a 400 naming it.
"""
import asyncio
import csv
import datetime
import html
import io
import json
import logging
import os
import re
import time

from aiohttp import web

from edge.errors import DataError
from monitor.auth import COOKIE
from monitor.live import CLOSED
from monitor.payloads import EVENT_ID, MAX_NAME, parse_time_ms
from monitor.store import DatabaseError, Filters
from monitor.views import devices_view, event_view, hourly_view, iso

log = logging.getLogger(__name__)

EPOCH_MS = re.compile(r"-?[0-9]{1,15}")  # epoch milliseconds, within what SQL and dates hold

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
MAX_LIMIT = 1000
DEFAULT_HOURS = 24
SSE_PING_S = 15.0
LOGIN_FAILURE_DELAY_S = 1.0
ZONE = re.compile(r"(Z|[+-]\d\d:?\d\d)$")
PUBLIC_PATHS = ("/login", "/static/")
# (new columns go last: a reader may pick columns by position)
CSV_COLUMNS = ("id", "time", "device", "camera", "type", "score", "track_id", "seq", "box", "received",
               "snapshot", "reason")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

STORE, INGEST, HUB, AUTH, CONFIG = (web.AppKey(n, object) for n in ("store", "ingest", "hub", "auth", "config"))


def bad_request(message):
    """A 400 with a JSON reason."""
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def _name(query, key):
    value = query.get(key) or None
    if value is not None and len(value) > MAX_NAME:
        raise bad_request(f"{key} is longer than {MAX_NAME} characters")
    return value


def _time(query, key):
    value = query.get(key)
    if not value:
        return None
    if EPOCH_MS.fullmatch(value):
        return int(value)  # epoch milliseconds
    try:  # a time without a zone is UTC
        return parse_time_ms(value if ZONE.search(value) else value + "Z")
    except DataError:
        raise bad_request(f"{key}: {value[:40]!r} is not an ISO 8601 time nor epoch milliseconds") from None


def filters_from(query):
    """Filters from a request's query string (400 for a bad value)."""
    filters = Filters(device=_name(query, "device"), camera=_name(query, "camera"),
                      type=_name(query, "type"), since_ms=_time(query, "since"),
                      until_ms=_time(query, "until"))
    if filters.since_ms is not None and filters.until_ms is not None and filters.since_ms >= filters.until_ms:
        raise bad_request("since must be before until")
    return filters


def _limit(query):
    text = query.get("limit", "50")
    if not re.fullmatch(r"[0-9]{1,4}", text) or not 1 <= int(text) <= MAX_LIMIT:
        raise bad_request(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _cursor(query):
    text = query.get("cursor")
    if not text:
        return None
    time_ms, _, event_id = text.partition(".")
    if not EPOCH_MS.fullmatch(time_ms) or not EVENT_ID.fullmatch(event_id):
        raise bad_request("cursor is not one this API gave")
    return int(time_ms), event_id


async def blocking(call, *args):
    """Run a blocking (database) call in the thread pool; DatabaseError becomes a 503."""
    try:
        return await asyncio.get_running_loop().run_in_executor(None, call, *args)
    except DatabaseError as exc:
        log.error("database error serving a request: %s", exc)
        raise web.HTTPServiceUnavailable(text=json.dumps({"error": f"database: {exc}"}),
                                         content_type="application/json") from None


# --- middlewares -------------------------------------------------------------------------

async def security_headers(request, response):
    """Headers that keep the page from being framed, sniffed or leaking its address, set as each
    response is prepared (streamed ones too: the CSV export, the live feed)."""
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def require_token(request, handler):
    """With a token set, nothing but the login page and static files without it."""
    auth = request.app[AUTH]
    if auth.required and not request.path.startswith(PUBLIC_PATHS) and \
            not auth.allowed(request.headers, request.cookies):
        if request.path.startswith("/api/"):
            raise web.HTTPUnauthorized(text=json.dumps({"error": "token required"}),
                                       content_type="application/json",
                                       headers={"WWW-Authenticate": 'Bearer realm="maskdet monitor"'})
        raise web.HTTPFound("/login")
    return await handler(request)


# --- the page and login ------------------------------------------------------------------

async def index(request):
    """The dashboard."""
    return web.FileResponse(os.path.join(STATIC_DIR, "index.html"),
                            headers={"Cache-Control": "no-store"})


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>maskdet monitor: log in</title><link rel="stylesheet" href="/static/style.css"></head>
<body class="login"><form method="post" action="/login" class="card">
<h1>maskdet monitor</h1><p>This dashboard shows people's events: enter the monitor's token.</p>
<label>Token <input type="password" name="token" autocomplete="current-password" autofocus required></label>
{message}<button type="submit">Log in</button></form></body></html>
"""


def login_page(message="", status=200):
    """The login form, with a message (escaped) when the last try failed."""
    text = LOGIN_PAGE.format(message=f'<p class="error">{html.escape(message)}</p>' if message else "")
    return web.Response(text=text, content_type="text/html", status=status,
                        headers={"Cache-Control": "no-store"})


async def login_form(request):
    """GET /login."""
    if not request.app[AUTH].required:
        raise web.HTTPFound("/")
    return login_page()


async def login(request):
    """POST /login: the token in, a session cookie out."""
    auth = request.app[AUTH]
    if not auth.required:
        raise web.HTTPFound("/")
    form = await request.post()
    if not auth.token_matches(form.get("token")):
        log.warning("failed login from %s", request.remote)
        await asyncio.sleep(LOGIN_FAILURE_DELAY_S)
        return login_page("That is not the token.", status=401)
    response = web.HTTPFound("/")
    response.set_cookie(COOKIE, auth.session_cookie(), max_age=auth.session_s, httponly=True,
                        samesite="Strict", secure=auth.secure, path="/")
    raise response


async def logout(request):
    """POST /logout: the session cookie is dropped."""
    response = web.HTTPFound("/login" if request.app[AUTH].required else "/")
    response.del_cookie(COOKIE, path="/")
    raise response


# --- the API -----------------------------------------------------------------------------

async def api_devices(request):
    """Every device with its cameras."""
    device_rows, camera_rows, last = await blocking(request.app[STORE].devices)
    return web.json_response({"devices": devices_view(device_rows, camera_rows, last,
                                                      int(time.time() * 1000))})


async def api_events(request):
    """A page of events, newest first, and the cursor of the next page."""
    filters, limit, cursor = filters_from(request.query), _limit(request.query), _cursor(request.query)
    rows, following = await blocking(request.app[STORE].events, filters, limit, cursor)
    return web.json_response({"events": [event_view(r) for r in rows], "limit": limit,
                              "next": f"{following[0]}.{following[1]}" if following else None})


def csv_cell(value):
    """A CSV cell that a spreadsheet will not run as a formula (= + - @ and tab lead)."""
    if value is None:
        return ""
    text = json.dumps(value) if isinstance(value, list) else str(value)
    if text and text[0] in "=+-@\t\r" and not _is_number(text):
        return "'" + text
    return text


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


async def api_events_csv(request):
    """Every matching event as CSV, streamed a page at a time."""
    filters = filters_from(request.query)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M")
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="maskdet-events-{stamp}.csv"'})
    store = request.app[STORE]
    rows, cursor = await blocking(store.events, filters, 2000, None)
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    while True:
        for row in rows:
            view = event_view(row)
            writer.writerow([csv_cell(view[c]) for c in CSV_COLUMNS])
        await response.write(buffer.getvalue().encode("utf-8"))
        buffer.seek(0)
        buffer.truncate()
        if cursor is None:
            break
        rows, cursor = await blocking(store.events, filters, 2000, cursor)
    await response.write_eof()
    return response


async def api_hourly(request):
    """People seen and people without a mask per door and hour (default: the last 24 hours)."""
    filters = filters_from(request.query)
    if filters.since_ms is None:
        end = filters.until_ms or int(time.time() * 1000)
        filters.since_ms = end - DEFAULT_HOURS * 3_600_000
    rows = await blocking(request.app[STORE].hourly, filters)
    return web.json_response({"since": iso(filters.since_ms), "until": iso(filters.until_ms),
                              "hours": hourly_view(rows)})


async def api_snapshot(request):
    """A snapshot's JPEG."""
    text = request.match_info["snapshot_id"]
    if not text.isdigit():
        raise web.HTTPNotFound()
    data = await blocking(request.app[STORE].snapshot, int(text))
    if data is None:
        raise web.HTTPNotFound()
    return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


async def api_health(request):
    """The monitor's own health: broker, database, counts."""
    config, status = request.app[CONFIG], request.app[INGEST].status
    return web.json_response({
        "time": iso(int(time.time() * 1000)),
        "mqtt": {"connected": status.connected, "problem": status.broker_problem,
                 "broker": f"{config.mqtt.host}:{config.mqtt.port}", "client_id": config.mqtt.client_id,
                 "subscription": f"{config.mqtt.prefix}/#"},
        "database": {"backend": request.app[STORE].dialect, "error": status.db_error,
                     "error_since": iso(status.db_error_since_ms)},
        "ingest": {"received": status.received, "stored_events": status.stored_events,
                   "duplicates": status.duplicates, "rejected": status.rejected,
                   "last_rejected": [{"topic": t, "reason": r} for t, r in status.last_rejected],
                   "waiting": request.app[INGEST].queue.qsize(), "last_write": iso(status.last_write_ms)},
        "retention_days": config.retention_days,
        "auth": request.app[AUTH].required,
    })


async def api_stream(request):
    """The live feed as server-sent events; a comment every 15 s keeps proxies from closing it."""
    hub = request.app[HUB]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    client = hub.subscribe()
    try:
        await response.write(b"retry: 3000\nevent: hello\ndata: {}\n\n")
        while True:
            if client.overflowed:
                client.overflowed = False
                while not client.queue.empty():
                    client.queue.get_nowait()
                await response.write(b"event: reset\ndata: {}\n\n")
            try:
                kind, data = await asyncio.wait_for(client.queue.get(), SSE_PING_S)
            except asyncio.TimeoutError:
                await response.write(b": ping\n\n")
                continue
            if (kind, data) == CLOSED:
                break
            await response.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode("utf-8"))
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        hub.unsubscribe(client)
    return response


def make_app(config, store, ingest, hub, auth):
    """The aiohttp application."""
    app = web.Application(middlewares=[require_token], client_max_size=64 * 1024)
    app.on_response_prepare.append(security_headers)
    app[CONFIG], app[STORE], app[INGEST], app[HUB], app[AUTH] = config, store, ingest, hub, auth
    app.router.add_get("/", index)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/devices", api_devices)
    app.router.add_get("/api/events", api_events)
    app.router.add_get("/api/events.csv", api_events_csv)
    app.router.add_get("/api/hourly", api_hourly)
    app.router.add_get("/api/stream", api_stream)
    app.router.add_get("/api/health", api_health)
    app.router.add_get("/api/snapshots/{snapshot_id}", api_snapshot)
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
    return app
