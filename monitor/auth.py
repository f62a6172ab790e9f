"""Who may see the dashboard: with a token configured, every page and API call needs it, either
as `Authorization: Bearer <token>` (tools) or through the login form, which sets a signed session
cookie (the page). The cookie is `<expiry>.<HMAC-SHA256(token, expiry)>`: nothing is stored on
the server, and changing the token ends every session. Without a token the monitor only listens
on loopback (the config check refuses anything else)."""
import hashlib
import hmac
import re
import time

COOKIE = "maskdet_monitor_session"


class Auth:
    """The token check for requests (`token` None: no token, everything is allowed)."""

    def __init__(self, token, session_hours=12.0, secure=False):
        self.token = token
        self.session_s = int(session_hours * 3600)
        self.secure = secure

    @property
    def required(self):
        """True when requests must prove they know the token."""
        return self.token is not None

    def token_matches(self, given):
        """Constant-time comparison with the token."""
        return self.token is not None and given is not None and \
            hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode("utf-8"))

    def _signature(self, expiry):
        return hmac.new(self.token.encode(), f"session:{expiry}".encode(), hashlib.sha256).hexdigest()

    def session_cookie(self, now=None):
        """A new session cookie's value."""
        expiry = int((time.time() if now is None else now) + self.session_s)
        return f"{expiry}.{self._signature(expiry)}"

    def session_valid(self, value, now=None):
        """True for an unexpired cookie this token signed."""
        expiry, _, signature = (value or "").partition(".")
        if not re.fullmatch(r"[0-9]{1,12}", expiry) or not signature:
            return False
        if int(expiry) < (time.time() if now is None else now):
            return False
        return hmac.compare_digest(signature, self._signature(int(expiry)))

    def allowed(self, headers, cookies):
        """Does a request (its headers and cookies) carry the token or a valid session?"""
        if not self.required:
            return True
        scheme, _, given = headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(given.strip()):
            return True
        return self.session_valid(cookies.get(COOKIE))
