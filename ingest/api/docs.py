"""The interactive API documentation, served whole by this service: Swagger UI at ``/docs`` and
ReDoc at ``/redoc``, with their scripts and styles under ``/docs/assets/``.

Nothing is loaded from a CDN, so the pages work on a clinic's closed network. The Swagger UI and
ReDoc bundles are the ones the ``fastapi-offline`` package ships; the pages and the scripts that
start the two viewers are this package's own (``static/``), so the pages carry a
Content-Security-Policy that admits scripts, styles and data from this origin only, with no
inline script (ReDoc: two inline style elements, admitted by their hashes).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

ASSETS_PATH: Final = "/docs/assets"
#: The viewers' bundles (swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png).
VIEWER_PACKAGE: Final = ("fastapi_offline", "static")
#: The pages' own start-up scripts.
INIT_DIR: Final = Path(__file__).parent / "static"


def _policy(style_src: str) -> str:
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            f"style-src {style_src}",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "worker-src 'self' blob:",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


#: Swagger UI loads only this origin's files: no inline script or style.
DOCS_CONTENT_SECURITY_POLICY: Final = _policy("'self'")
#: ReDoc's bundle adds two style elements of its own: an empty one that its styling library
#: (styled-components) fills through the CSSOM, and its scroll bars' fixed stylesheet. Their hashes
#: admit exactly those two and no other inline style; a ReDoc bundle with other styles shows as a
#: CSP violation in the browser test (tests/e2e/test_api_docs.py), which names the hash to review
#: (pyproject.toml pins the package that ships the bundle for this reason).
#: ReDoc also always asks for its vendor's logo from that vendor's CDN: ``img-src`` refuses it and
#: the page hides the image.
REDOC_STYLE_HASHES: Final = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # the empty element
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",  # the scroll bars' stylesheet
)
REDOC_CONTENT_SECURITY_POLICY: Final = _policy(" ".join(("'self'", *REDOC_STYLE_HASHES)))

_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png">
{head}
</head>
<body>
<div id="{element}" data-openapi-url="{openapi}"></div>
<script src="{assets}/{bundle}"></script>
<script src="{assets}/{init}"></script>
</body>
</html>
"""


@dataclass(frozen=True, slots=True)
class _Viewer:
    """One documentation page: its bundle, the file that starts it, its stylesheet and policy."""

    title: str
    element: str
    bundle: str
    init: str
    stylesheet: str | None
    policy: str


class AssetFiles(StaticFiles):
    """The viewers' files, revalidated with their ETag rather than fetched again on every page."""

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        return response


def _page(request: Request, openapi_url: str, viewer: _Viewer) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    assets = html.escape(root + ASSETS_PATH)
    stylesheet = f'<link rel="stylesheet" href="{assets}/{viewer.stylesheet}">' if viewer.stylesheet else ""
    body = _PAGE.format(
        title=html.escape(viewer.title),
        assets=assets,
        openapi=html.escape(root + openapi_url),
        element=viewer.element,
        bundle=viewer.bundle,
        init=viewer.init,
        head=stylesheet,
    )
    return HTMLResponse(body, headers={"Content-Security-Policy": viewer.policy})


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets; create ``app`` with ``docs_url=None, redoc_url=None``."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS_PATH, AssetFiles(directory=INIT_DIR, packages=[VIEWER_PACKAGE]), name="docs-assets")

    swagger = _Viewer(
        f"{app.title} - Swagger UI", "swagger-ui", "swagger-ui-bundle.js", "swagger-init.js",
        "swagger-ui.css", DOCS_CONTENT_SECURITY_POLICY,
    )  # fmt: skip
    redoc = _Viewer(
        f"{app.title} - ReDoc", "redoc", "redoc.standalone.js", "redoc-init.js", None,
        REDOC_CONTENT_SECURITY_POLICY,
    )  # fmt: skip

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        return _page(request, openapi_url, swagger)

    @app.get("/redoc", include_in_schema=False)
    def redoc_ui(request: Request) -> HTMLResponse:
        return _page(request, openapi_url, redoc)
