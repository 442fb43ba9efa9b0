"""The API documentation works on a closed network: Swagger UI (``/docs``) and ReDoc (``/redoc``)
render in a real browser that may reach nothing but this service, under a Content-Security-Policy
that admits this origin's files only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ingest.api.docs import DOCS_CONTENT_SECURITY_POLICY, REDOC_CONTENT_SECURITY_POLICY
from ingest.dashboard.static_routes import CONTENT_SECURITY_POLICY as DASHBOARD_POLICY
from tests.support.browser import PageProblems
from tests.support.service import RunningService

pytestmark = pytest.mark.browser

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})


@pytest.fixture
def offline(page: Any) -> Iterator[list[str]]:
    """Abort every request that would leave this machine; yields the URLs that tried."""
    tried: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS:
            r.continue_()
        else:
            tried.append(url)
            r.abort()

    page.route("**/*", route)
    yield tried


def policy(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {d[0]: d[1:] for d in directives}


def test_swagger_ui_renders_without_the_internet(
    page: Any, offline: list[str], service: RunningService
) -> None:
    response = page.goto(service.base_url + "/docs")
    assert response.status == 200
    readings = page.locator(".opblock-post").filter(has=page.locator("[data-path='/v1/readings']"))
    readings.wait_for()
    assert "Ingest readings of one device" in readings.inner_text()
    assert page.locator(".opblock").count() > 20  # the operations list, not one stray block
    readings.locator(".opblock-summary").click()  # an operation opens with its request body
    readings.locator(".opblock-body").wait_for()
    assert offline == []  # nothing tried to reach another host
    assert response.headers["content-security-policy"] == DOCS_CONTENT_SECURITY_POLICY


def test_redoc_renders_without_the_internet(
    page: Any, offline: list[str], problems: PageProblems, service: RunningService
) -> None:
    response = page.goto(service.base_url + "/redoc")
    assert response.status == 200
    page.locator("h2", has_text="Ingest readings of one device").first.wait_for()
    assert page.get_by_text("/v1/readings", exact=True).count() >= 1
    assert page.locator("img[alt='redocly logo']").count() == 0  # hidden once the CSP refused it
    assert offline == []
    # ReDoc always asks its vendor's CDN for a logo; the policy refuses it before any request is made.
    # That refusal is the one report allowed here (the page fixture fails on any other).
    logo = [m for m in problems.messages if "Loading the image 'https://cdn.redoc.ly/" in m]
    problems.messages[:] = [m for m in problems.messages if m not in logo]
    assert response.headers["content-security-policy"] == REDOC_CONTENT_SECURITY_POLICY


def test_the_docs_policy_admits_this_origin_only(service: RunningService) -> None:
    with httpx.Client(base_url=service.base_url) as client:
        for path in ("/docs", "/redoc"):
            r = client.get(path)
            rules = policy(r.headers["content-security-policy"])
            assert rules["script-src"] == ["'self'"], path  # no inline script, no CDN
            assert rules["default-src"] == ["'none'"] and rules["frame-ancestors"] == ["'none'"]
            sources = {s for values in rules.values() for s in values}
            assert not [s for s in sources if "://" in s or s.endswith(":") and s not in ("data:", "blob:")]
            assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources
            assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
            assert "<script>" not in r.text  # every script is a file of this origin
        asset = client.get("/docs/assets/swagger-ui-bundle.js")
        assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
        assert asset.headers["cache-control"] == "no-cache" and asset.headers["etag"]
        again = client.get(
            "/docs/assets/swagger-ui-bundle.js", headers={"If-None-Match": asset.headers["etag"]}
        )
        assert again.status_code == 304
        assert client.get("/docs/assets/../app.py").status_code == 404
        # the dashboard keeps its own, stricter policy
        dashboard = client.get("/dashboard/")
        assert dashboard.headers["content-security-policy"] == DASHBOARD_POLICY
