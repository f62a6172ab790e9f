"""The optional HTTP view of the daemon: a small page with each camera's live view and state,
`/<camera>/live.mjpeg`, `/<camera>/snapshot.jpg`, `/api/state`, `/api/stats`, `/metrics` and
the kept event snapshots `/snapshots/<id>.jpg`.

The server is the standard library's `ThreadingHTTPServer`: no dependency to install or keep
patched on the Pi, one thread per connection (a handful of viewers at most, `http.max_viewers`
live streams), and nothing here is on the frame loop's path. The frame loop only `offer`s each
analysed frame to a latest-only slot (an assignment under a lock: no copy, no encoding); a
server thread draws, blurs and encodes a frame only while someone watches, at most
`http.max_fps` times a second, and viewers of one camera share each encoded frame.

Access: with a token (from the environment or a systemd credential), every request must carry it
as `Authorization: Bearer TOKEN`, as the password of HTTP Basic authentication (any user name:
a browser asks for it), or in the cookie that `/?token=TOKEN` sets. Without a token the server
must listen on loopback only (check-config refuses anything else).
"""
import base64
import hmac
import http.server
import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

from edge.inference.annotate import draw_view, encode_jpeg, shrink
from edge.mqtt_client import secret

log = logging.getLogger(__name__)

BOUNDARY = "maskdetframe"
COOKIE = "maskdet_token"
WRITE_TIMEOUT_S = 10.0  # a viewer that stops reading for this long is dropped
WAIT_S = 0.5  # how often a waiting stream looks at the stop request
MIN_TOKEN_LENGTH = 12
SNAPSHOT_ID = re.compile(r"[0-9a-f]{32}")
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; script-src 'self'; "
                               "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
}


def parse_listen(value):
    """`HOST:PORT` -> (host, port); IPv6 as `[::1]:8080`; the host an IP address or
    `localhost`; port 0 takes any free port (the log says which). ValueError says what is
    wrong."""
    match = re.fullmatch(r"\[([^\]]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", value.strip())
    if not match or value != value.strip():
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} must be between 0 and 65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address: give the address of an interface "
                             "of this device (0.0.0.0 for all), or localhost") from None
    return host, port


def is_loopback(host):
    """True when `host` (an IP address or localhost) is only reachable from this device."""
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def read_token(http_config, environ=os.environ):
    """The access token: from the environment variable, else the systemd credential file; None
    when neither is set (or it is empty)."""
    return secret(http_config.token_env, http_config.token_credential, environ)


class LiveSlot:
    """The newest analysed frame of one camera (latest only) and its encoded JPEG, shared by
    every viewer. `offer` is all the frame loop does."""

    def __init__(self):
        self._cond = threading.Condition()
        self._encode = threading.Lock()
        self._item = None  # (number, image, faces, ignored faces, ignore regions)
        self._jpeg = (None, None)  # (number, bytes)

    def offer(self, number, image, faces, ignored=(), regions=()):
        """The frame loop's hand-over: keep a reference, wake the viewers. Never blocks long."""
        with self._cond:
            self._item = (number, image, faces, ignored, regions)
            self._cond.notify_all()

    @property
    def number(self):
        """The number of the newest frame offered (0: none yet)."""
        item = self._item
        return item[0] if item else 0

    def wait_newer(self, than, timeout):
        """The newest (number, image, faces, ignored, regions) newer than frame `than`, or None
        after `timeout`."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None and self._item[0] != than, timeout)
            item = self._item
        return item if item is not None and item[0] != than else None

    def jpeg(self, item, render):
        """The JPEG of `item` made by `render(image, faces, ignored, regions)`, encoded once for
        every viewer."""
        number, *drawing = item
        with self._encode:
            if self._jpeg[0] != number:
                self._jpeg = (number, render(*drawing))
            return self._jpeg[1]


class HttpView:
    """The HTTP server and what it serves. `source` is the running Daemon (re-attached at each
    reload) with `http_states()`, `http_stats()`, `metrics_text()` and `snapshot_file(id)`."""

    def __init__(self, http_config, privacy_config, token=None):
        self.config = http_config
        self.privacy = privacy_config
        self.token = token
        self.host, self.port = parse_listen(http_config.listen)
        self.source = None
        self.slots = {}
        self.viewers = 0
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = None
        self._thread = None

    # -- the frame loop's side

    def set_cameras(self, names):
        """The cameras served (a reload may change them); a kept camera keeps its slot."""
        self.slots = {name: self.slots.get(name) or LiveSlot() for name in names}

    def offer(self, camera, number, image, faces, ignored=(), regions=()):
        """Hand an analysed frame to the live view (never blocks, never raises): its faces, the
        faces set apart by the camera's ignore regions and those regions (polygons in fractions
        of the frame), drawn in grey."""
        slot = self.slots.get(camera)
        if slot is not None:
            slot.offer(number, image, faces, ignored, regions)

    # -- start and stop

    def start(self, source):
        """Bind and serve in a thread; False (logged) when the address cannot be bound: the
        daemon goes on without the view."""
        self.source = source
        if self._server is not None:
            return True
        try:
            self._server = _Server((self.host, self.port), _handler(self))
        except OSError as exc:
            log.error("HTTP view: cannot listen on %s (%s); the detector goes on without it",
                      self.config.listen, exc.strerror or exc)
            return False
        self.port = self._server.server_address[1]  # the real one when 0 was asked
        self._thread = threading.Thread(target=self._serve, name="maskdet-http", daemon=True)
        self._thread.start()
        log.info("HTTP view on http://%s:%d/ (%s)", self._url_host(), self.port,
                 "token required" if self.token else "no token: loopback only")
        return True

    def _url_host(self):
        return f"[{self.host}]" if ":" in self.host else self.host

    def _serve(self):
        try:
            self._server.serve_forever(poll_interval=WAIT_S)
        except Exception:  # the view is not worth the door: log it, the frame loop goes on
            log.exception("HTTP view stopped")

    @property
    def stopping(self):
        """True once `stop` was called (open streams end within WAIT_S)."""
        return self._stop.is_set()

    def stop(self):
        """Stop serving and close the listening socket; open streams end within WAIT_S."""
        self._stop.set()
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    # -- what handlers use

    def authorized(self, headers):
        """True when no token is set, or the request carries it (Bearer, Basic, cookie)."""
        if not self.token:
            return True
        return any(self._matches(given) for given in _offered_tokens(headers))

    def _matches(self, given):
        return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"),
                                                         self.token.encode("utf-8"))

    def render(self, image, faces, ignored=(), regions=()):
        """A frame as the live view shows it: faces blurred (per privacy), the ignore regions
        and their faces in grey, boxes and scores drawn, shrunk to max_width, JPEG."""
        view = draw_view(image, faces, blur=self.privacy.blur_faces, ignored=ignored,
                         regions=regions)
        return encode_jpeg(shrink(view, self.config.max_width), self.config.jpeg_quality)

    def add_viewer(self):
        """Count a live viewer; False when max_viewers are watching already."""
        with self._lock:
            if self.viewers >= self.config.max_viewers:
                return False
            self.viewers += 1
            return True

    def remove_viewer(self):
        """A live viewer left."""
        with self._lock:
            self.viewers -= 1


def _offered_tokens(headers):
    """The tokens a request offers: Bearer, the password of Basic, the cookie."""
    offered = []
    auth = headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        offered.append(value.strip())
    elif scheme.lower() == "basic":
        try:
            offered.append(base64.b64decode(value.strip(), validate=True).decode("utf-8")
                           .partition(":")[2])
        except (ValueError, UnicodeDecodeError):
            pass
    for part in headers.get("Cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            offered.append(value)
    return offered


MAX_CONNECTIONS = 32  # open connections at once (a thread each); more are closed at once
REQUEST_TIMEOUT_S = 10.0  # a client that sends no request in this time is dropped


class _Server(http.server.ThreadingHTTPServer):
    """Daemon threads (a stuck viewer never holds up a stop), at most MAX_CONNECTIONS of them
    (idle connections cannot use up the device's threads and files), IPv6 when the address is,
    and errors logged instead of printed."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        """Serve the connection in a thread of its own, or close it when all are taken."""
        if not self._slots.acquire(blocking=False):
            log.debug("HTTP view: %d connections open; closing one from %s", MAX_CONNECTIONS,
                      client_address)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        log.debug("HTTP view: error serving %s", client_address, exc_info=True)


def _without_query(text):
    """A request line or path with its query string cut (`/?token=...` -> `/?...`)."""
    head, mark, rest = text.partition("?")
    if not mark:
        return text
    tail = rest.split(" ", 1)
    return head + "?..." + (" " + tail[1] if len(tail) > 1 else "")


def _handler(view):
    """The request handler class bound to `view`."""

    class Handler(_Handler):
        pass

    Handler.view = view
    return Handler


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET only; every route behind the token when one is set."""

    view = None
    server_version = "maskdet"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S  # reading the request; a live stream sets its own write timeout

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        """Debug log of each request, without its query string (it may carry the token)."""
        args = tuple(_without_query(a) if isinstance(a, str) else a for a in args)
        log.debug("HTTP %s: " + format, self.address_string(), *args)

    def do_GET(self):  # noqa: N802 - the base class's name
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            log.debug("HTTP view: %s went away", self.address_string())
        except Exception:
            self.view.errors += 1
            log.exception("HTTP view: %s failed", _without_query(self.path)[:200])
            try:
                self._send(500, b"internal error\n", "text/plain; charset=utf-8")
            except OSError:
                pass

    def _route(self):
        url = urlsplit(self.path)
        path = url.path
        if path == "/" and "token" in parse_qs(url.query):
            return self._login(parse_qs(url.query)["token"][0])
        if not self.view.authorized(self.headers):
            return self._send(401, b"a token is needed\n", "text/plain; charset=utf-8",
                              {"WWW-Authenticate": 'Basic realm="maskdet", charset="UTF-8"'})
        if path in ("/", "/index.html"):
            return self._send(200, PAGE.encode(), "text/html; charset=utf-8")
        if path == "/app.js":
            return self._send(200, SCRIPT.encode(), "text/javascript; charset=utf-8")
        if path == "/api/state":
            return self._json(self.view.source.http_states())
        if path == "/api/stats":
            stats = self.view.source.http_stats()
            return self._json(stats) if stats else self._send(503, b"no stats yet\n", "text/plain")
        if path == "/metrics":
            return self._send(200, self.view.source.metrics_text().encode(),
                              "text/plain; version=0.0.4; charset=utf-8")
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "snapshots":
            return self._kept_snapshot(parts[1])
        if len(parts) == 2 and parts[0] in self.view.slots:
            if parts[1] == "live.mjpeg":
                return self._stream(self.view.slots[parts[0]])
            if parts[1] == "snapshot.jpg":
                return self._snapshot(self.view.slots[parts[0]])
        return self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _login(self, token):
        """`/?token=T`: a right token becomes a cookie (HttpOnly, SameSite=Strict) and the page."""
        if not self.view.token or not self.view._matches(token):
            return self._send(401, b"wrong token\n", "text/plain; charset=utf-8")
        return self._send(303, b"", "text/plain", {
            "Location": "/",
            "Set-Cookie": f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"})

    def _send(self, status, body, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in dict(SECURITY_HEADERS, **(headers or {})).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data):
        self._send(200, json.dumps(data).encode(), "application/json")

    def _snapshot(self, slot):
        item = slot.wait_newer(0, 0)
        if item is None:
            return self._send(503, b"no frame yet\n", "text/plain; charset=utf-8")
        self._send(200, slot.jpeg(item, self.view.render), "image/jpeg")

    def _kept_snapshot(self, name):
        stem = name[:-4] if name.endswith(".jpg") else ""
        path = self.view.source.snapshot_file(stem) if SNAPSHOT_ID.fullmatch(stem) else None
        if path is None:
            return self._send(404, b"no such snapshot\n", "text/plain; charset=utf-8")
        with open(path, "rb") as handle:
            self._send(200, handle.read(), "image/jpeg")

    def _stream(self, slot):
        """multipart/x-mixed-replace: one JPEG part per new frame, at most max_fps a second,
        until the viewer leaves or the server stops."""
        if not self.view.add_viewer():
            return self._send(503, b"too many viewers\n", "text/plain; charset=utf-8",
                              {"Retry-After": "10"})
        try:
            self.connection.settimeout(WRITE_TIMEOUT_S)
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            self._frames(slot)
        finally:
            self.view.remove_viewer()

    def _frames(self, slot):
        period = 1.0 / self.view.config.max_fps
        last, next_at = 0, 0.0
        while not self.view.stopping:
            wait = next_at - time.monotonic()
            if wait > 0:
                self.view._stop.wait(wait)
                continue
            item = slot.wait_newer(last, WAIT_S)
            if item is None:
                continue
            jpeg = slot.jpeg(item, self.view.render)
            self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                             f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
            self.wfile.flush()
            last, next_at = item[0], time.monotonic() + period


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>maskdet</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1rem; background: #111; color: #eee; }
h1 { font-size: 1.2rem; margin: 0 0 1rem; }
main { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; background: #222; padding: .5rem; border-radius: .4rem; max-width: 100%; }
figure img { display: block; max-width: 100%; min-width: 320px; min-height: 180px; background: #000; }
figcaption { margin-top: .4rem; font-size: .9rem; }
.alert { color: #f66; font-weight: bold; }
.clear { color: #6c6; }
.error { color: #fa4; }
</style>
</head>
<body>
<h1>maskdet: <span id="device">live view</span></h1>
<main id="cameras"><p id="loading">loading...</p></main>
<script src="/app.js"></script>
</body>
</html>
"""

SCRIPT = r"""'use strict';
// Builds one figure per camera (its MJPEG live view and its state), refreshed every 2 s.
// Everything from the device is set as text, never as markup.
const cameras = document.getElementById('cameras');
const figures = {};

function figureFor(name) {
  if (figures[name]) return figures[name];
  const figure = document.createElement('figure');
  figure.id = 'camera-' + name;
  const img = document.createElement('img');
  img.alt = name + ' live view';
  img.src = '/' + encodeURIComponent(name) + '/live.mjpeg';
  const caption = document.createElement('figcaption');
  figure.append(img, caption);
  cameras.append(figure);
  figures[name] = {figure, img, caption};
  return figures[name];
}

function describe(name, s) {
  const parts = [name + ':', s.alert ? 'ALERT' : 'clear',
    'in view ' + s.in_view, 'people ' + s.people, 'no mask ' + s.without_mask,
    s.fps.toFixed(1) + ' fps', s.accelerator];
  if (s.paused) parts.push('paused');
  if (s.muted) parts.push('muted');
  if (!s.camera_ok) parts.push('camera down');
  if (s.error) parts.push('(' + s.error + ')');
  return parts.join(' ');
}

async function refresh() {
  try {
    const response = await fetch('/api/state', {cache: 'no-store'});
    if (!response.ok) throw new Error('HTTP ' + response.status);
    const states = await response.json();
    const loading = document.getElementById('loading');
    if (loading) loading.remove();
    for (const [name, s] of Object.entries(states)) {
      const f = figureFor(name);
      f.caption.textContent = describe(name, s);
      f.caption.className = s.alert ? 'alert' : (s.error ? 'error' : 'clear');
    }
  } catch (err) {
    document.title = 'maskdet (no answer)';
  }
}

refresh();
setInterval(refresh, 2000);
"""
