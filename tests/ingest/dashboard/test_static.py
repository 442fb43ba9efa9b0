"""The dashboard's static files: served with strict headers, nothing outside the directory."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from ingest.dashboard.static_routes import STATIC_DIR, load_static
from tests.support.service import RunningService


def raw_get(base_url: str, target: str) -> tuple[int, bytes]:
    """Send a request line exactly as given (no client-side path normalisation)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def test_root_and_bare_path_redirect_to_the_dashboard(dashboard: RunningService) -> None:
    with dashboard.client(follow_redirects=False) as c:
        for path in ("/", "/dashboard"):
            r = c.get(path)
            assert r.status_code == 307
            assert r.headers["location"] == "/dashboard/"


def test_index_is_served_with_strict_security_headers(dashboard: RunningService) -> None:
    with dashboard.client() as c:
        r = c.get("/dashboard/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    assert b"<title>RPM clinician dashboard</title>" in r.content


def test_assets_have_types_and_etags(dashboard: RunningService) -> None:
    with dashboard.client() as c:
        js = c.get("/dashboard/js/app.js")
        assert js.status_code == 200
        assert js.headers["content-type"].startswith("text/javascript")
        assert js.headers["content-security-policy"]
        again = c.get("/dashboard/js/app.js", headers={"If-None-Match": js.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        css = c.get("/dashboard/css/app.css")
        assert css.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    "target",
    [
        "/dashboard/../../pyproject.toml",
        "/dashboard/%2e%2e/static_routes.py",
        "/dashboard/js/%2e%2e/%2e%2e/static_routes.py",
        "/dashboard/..%2f..%2fsettings.py",
        "/dashboard/%2fetc%2fpasswd",
        "/dashboard//etc/passwd",
        "/dashboard/static_routes.py",
        "/dashboard/js/app.js%00.png",
        "/dashboard/" + "a/" * 500 + "x.js",
        "/dashboard/missing.js",
        "/dashboard/js/",
    ],
)
def test_nothing_outside_the_static_files_is_served(dashboard: RunningService, target: str) -> None:
    status, body = raw_get(dashboard.base_url, target)
    assert status in (400, 404), (target, status)
    assert b"import " not in body and b"[project]" not in body and b"root:" not in body


def test_not_found_answers_carry_the_security_headers(dashboard: RunningService) -> None:
    with dashboard.client() as c:
        r = c.get("/dashboard/nope.html")
    assert r.status_code == 404
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_load_static_skips_unknown_types(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "notes.txt").write_text("secret")
    (tmp_path / "tool.py").write_text("print(1)")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.js").write_text("export {};")
    assert sorted(load_static(tmp_path)) == ["index.html", "sub/a.js"]


STATIC_FILES = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())


@pytest.mark.parametrize("path", STATIC_FILES, ids=lambda p: p.relative_to(STATIC_DIR).as_posix())
def test_static_sources_keep_to_the_content_security_policy(path: Path) -> None:
    """No inline script or style, no HTML built from strings, no eval: the CSP holds and data
    from the API can never become markup."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".html":
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, tag
        assert "<style" not in text
        assert not re.search(r"\son[a-z]+\s*=", text), "inline event handler"
        assert not re.search(r"\sstyle\s*=", text), "inline style attribute"
    if path.suffix == ".js":
        for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                          "new Function", "localStorage", ".style.", "setAttribute(\"style"):
            assert forbidden not in text, f"{forbidden} in {path.name}"
