"""Browser sessions beside bearer tokens: the cookies, and the CSRF rule for calls made with them.

A bearer token is never sent by a browser on its own, so a call carrying one cannot be forged by
another site. A cookie is: every state-changing call authenticated by the session cookie must
therefore prove it comes from the dashboard itself, twice over:

- its ``Origin`` header, when the browser sends one, is this service's own origin;
- it carries ``X-CSRF-Token`` equal to the session's CSRF token. The token reaches the dashboard
  in the readable ``rpm_csrf`` cookie (another site can neither read it nor set the header on a
  cross-site request without a CORS preflight this service refuses), and the server compares it
  with the digest stored with the session, so a cookie planted by a sibling subdomain does not
  pass either.

The session cookie itself is httpOnly (no script reads it), ``SameSite=Lax`` (not sent on
cross-site subrequests or POSTs) and ``Secure`` whenever the service is reached over TLS.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from starlette.responses import Response

SESSION_COOKIE: Final = "rpm_session"
CSRF_COOKIE: Final = "rpm_csrf"
CSRF_HEADER: Final = "x-csrf-token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute URL, lower case, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    host = parts.hostname.lower()
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    suffix = "" if port is None or port == default else f":{port}"
    return f"{parts.scheme.lower()}://{host}{suffix}"


def csrf_refusal(
    method: str, headers: Mapping[str, str], csrf_hash: bytes, own_origins: frozenset[str]
) -> str | None:
    """Why a call made with the session cookie is refused as a possible forgery, or None.

    ``headers`` are the request's headers (lower-case names); ``own_origins`` the origins the
    dashboard is served from.
    """
    if method.upper() in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    if origin is not None and origin_of(origin) not in own_origins:
        return f"cross-site request refused (Origin {origin[:100]!r} is not this service)"
    token = headers.get(CSRF_HEADER)
    if not token:
        return f"missing the X-CSRF-Token header (its value is in the {CSRF_COOKIE} cookie)"
    if not hmac.compare_digest(hashlib.sha256(token.encode("utf-8", "replace")).digest(), csrf_hash):
        return "the X-CSRF-Token header does not belong to this session"
    return None


def set_session_cookies(
    response: Response, *, secret: str, csrf_token: str, max_age_s: int, secure: bool
) -> None:
    response.set_cookie(
        SESSION_COOKIE, secret, max_age=max_age_s, path="/", httponly=True, secure=secure, samesite="lax"
    )
    # Readable by the dashboard's scripts (that is its purpose); Strict: never sent cross-site.
    response.set_cookie(
        CSRF_COOKIE, csrf_token, max_age=max_age_s, path="/", httponly=False, secure=secure, samesite="strict"
    )


def clear_session_cookies(response: Response, *, secure: bool) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, secure=secure, samesite="lax")
    response.delete_cookie(CSRF_COOKIE, path="/", httponly=False, secure=secure, samesite="strict")
