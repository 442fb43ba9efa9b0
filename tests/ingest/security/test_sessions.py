"""The CSRF rule for calls made with the session cookie (ingest.security.sessions)."""

from __future__ import annotations

import hashlib

import pytest

from ingest.security.sessions import csrf_refusal, origin_of

TOKEN = "csrf-token-of-the-session"
DIGEST = hashlib.sha256(TOKEN.encode()).digest()
OWN = frozenset({"https://rpm.example"})


def test_reads_pass_without_a_token() -> None:
    for method in ("GET", "HEAD", "OPTIONS", "get"):
        assert csrf_refusal(method, {}, DIGEST, OWN) is None


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing the X-CSRF-Token header"),
        ({"x-csrf-token": ""}, "missing"),
        ({"x-csrf-token": "guess"}, "does not belong"),
        ({"x-csrf-token": TOKEN + "x"}, "does not belong"),
        ({"x-csrf-token": "é\udcff"}, "does not belong"),
        ({"x-csrf-token": TOKEN, "origin": "https://evil.example"}, "cross-site"),
        ({"x-csrf-token": TOKEN, "origin": "null"}, "cross-site"),
        ({"x-csrf-token": TOKEN, "origin": "http://rpm.example"}, "cross-site"),
        ({"x-csrf-token": TOKEN, "origin": "https://rpm.example.evil.example"}, "cross-site"),
    ],
)
def test_a_state_changing_call_without_proof_is_refused(headers: dict[str, str], reason: str) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        refusal = csrf_refusal(method, headers, DIGEST, OWN)
        assert refusal is not None and reason in refusal


def test_the_dashboards_own_call_passes() -> None:
    assert csrf_refusal("POST", {"x-csrf-token": TOKEN}, DIGEST, OWN) is None
    assert (
        csrf_refusal("POST", {"x-csrf-token": TOKEN, "origin": "https://RPM.example:443"}, DIGEST, OWN)
        is None
    )


def test_origins_are_compared_in_their_normal_form() -> None:
    assert origin_of("https://RPM.example:443/path") == "https://rpm.example"
    assert origin_of("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert origin_of("null") is None and origin_of("https://x:99999") is None


def test_session_cookies_carry_their_attributes() -> None:
    from starlette.responses import Response

    from ingest.security.sessions import clear_session_cookies, set_session_cookies

    response = Response()
    set_session_cookies(response, secret="rpms_s", csrf_token="c", max_age_s=600, secure=True)
    session, csrf = response.headers.getlist("set-cookie")
    assert session.startswith("rpm_session=rpms_s;")
    for attribute in ("HttpOnly", "Max-Age=600", "Path=/", "SameSite=lax", "Secure"):
        assert attribute in session
    assert csrf.startswith("rpm_csrf=c;") and "HttpOnly" not in csrf
    assert "SameSite=strict" in csrf and "Secure" in csrf
    plain = Response()
    set_session_cookies(plain, secret="rpms_s", csrf_token="c", max_age_s=600, secure=False)
    assert all("Secure" not in h for h in plain.headers.getlist("set-cookie"))
    cleared = Response()
    clear_session_cookies(cleared, secure=True)
    assert all("Max-Age=0" in h for h in cleared.headers.getlist("set-cookie"))
