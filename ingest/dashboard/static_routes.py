"""Serve the dashboard's static files under ``/dashboard`` with strict security headers.

Only files that exist under ``static/`` with a known type are served; anything else is a 404, so
a crafted path (``..``, encoded separators, absolute paths) can never leave the directory. The
Content-Security-Policy forbids inline scripts and styles: the pages load only their own files
and talk only to this origin.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse

logger = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

_TYPES: Final[dict[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


def load_static(directory: Path = STATIC_DIR) -> dict[str, StaticFile]:
    """Every servable file under ``directory``, keyed by its relative POSIX path (read once)."""
    files: dict[str, StaticFile] = {}
    for path in sorted(directory.rglob("*")):
        media_type = _TYPES.get(path.suffix.lower())
        if not path.is_file() or media_type is None:
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        files[path.relative_to(directory).as_posix()] = StaticFile(body, media_type, etag)
    return files


def secured(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def build_router(files: dict[str, StaticFile] | None = None) -> APIRouter:
    """The dashboard router: ``/`` and ``/dashboard`` redirect to ``/dashboard/``."""
    catalogue = load_static() if files is None else files
    if "index.html" not in catalogue:
        raise FileNotFoundError(f"dashboard index.html missing under {STATIC_DIR}")
    logger.debug("dashboard serves %d files", len(catalogue))
    router = APIRouter(tags=["dashboard"], include_in_schema=False)

    @router.get("/")
    @router.get("/dashboard")
    def to_dashboard() -> Response:
        return secured(RedirectResponse("/dashboard/", status_code=status.HTTP_307_TEMPORARY_REDIRECT))

    @router.get("/dashboard/{path:path}")
    def dashboard_file(path: str, request: Request) -> Response:
        found = catalogue.get(path or "index.html")
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "not found", headers=SECURITY_HEADERS)
        # The page shell is never cached, so a new release is picked up at once; assets are
        # revalidated with their ETag.
        cache = "no-store" if found.media_type.startswith("text/html") else "no-cache"
        headers = {"ETag": found.etag, "Cache-Control": cache}
        if request.headers.get("if-none-match") == found.etag:
            return secured(Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers))
        return secured(Response(found.body, media_type=found.media_type, headers=headers))

    return router
