"""Abuse limits: request rate per token, header and body sizes, readings per request; security
headers; CORS off unless configured."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from ingest.errors import ConfigurationError
from ingest.security.ratelimit import RateLimiter, caller_key
from ingest.settings import Settings, load_settings
from tests.support.service import RunningService, running_service


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.acquire(b"k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire(b"k") == pytest.approx(1.0)
    assert limiter.acquire(b"other") == 0.0  # buckets are per key
    clock.now += 0.5
    assert limiter.acquire(b"k") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire(b"k") == 0.0
    clock.now += 3600
    assert [limiter.acquire(b"k") for _ in range(4)][-1] > 0  # refills only up to the burst
    clock.now -= 10_000  # a clock going backwards grants nothing
    assert limiter.acquire(b"k") > 0


def test_bucket_table_is_bounded() -> None:
    limiter = RateLimiter(per_minute=60, burst=1, clock=FakeClock(), max_keys=100)
    for i in range(1000):
        limiter.acquire(str(i).encode())
    assert len(limiter) == 100
    with pytest.raises(ValueError):
        RateLimiter(per_minute=0, burst=1)


def test_caller_key_never_contains_the_token() -> None:
    scope: dict[str, Any] = {"headers": [(b"authorization", b"Bearer rpm_abc")], "client": ("10.0.0.1", 5)}
    key = caller_key(scope)
    assert b"rpm_abc" not in key and key.startswith(b"t")
    assert caller_key({**scope, "headers": [(b"authorization", b"Bearer rpm_abd")]}) != key
    assert caller_key({"headers": [], "client": ("10.0.0.1", 5)}).startswith(b"a")
    assert caller_key({"headers": [(b"authorization", b"Basic x")], "client": None}).startswith(b"a")


@pytest.fixture
def limited(settings: Settings) -> Iterator[RunningService]:
    with running_service(
        settings.model_copy(update={"rate_limit_per_minute": 1, "rate_limit_burst": 3}), factories=[]
    ) as svc:
        yield svc


def test_over_the_rate_a_token_gets_429_with_retry_after(limited: RunningService) -> None:
    one, two = limited.token("clinician"), limited.token("clinician")
    with limited.client(one) as first, limited.client(two) as second, limited.client() as anonymous:
        assert [first.get("/v1/patients").status_code for _ in range(3)] == [200, 200, 200]
        r = first.get("/v1/patients")
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert "retry after" in r.json()["detail"]
        assert r.headers["x-content-type-options"] == "nosniff"  # refusals carry the headers too
        assert second.get("/v1/patients").status_code == 200  # another token has its own bucket
        for _ in range(5):
            assert anonymous.get("/healthz").status_code == 200  # probes are never limited
        statuses = [anonymous.get("/v1/patients").status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]  # without a token: limited by address
        assert "rpm_http_rate_limited_total 2.0" in anonymous.get("/metrics").text


def test_security_headers(service: RunningService) -> None:
    with service.client(service.token("clinician")) as client:
        r = client.get("/v1/patients")
    h = r.headers
    assert h["x-content-type-options"] == "nosniff"
    assert h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "no-referrer"
    assert h["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert "default-src 'self'" in h["content-security-policy"]
    assert "strict-transport-security" not in h  # off unless TLS terminates in front of us
    assert "server" not in h
    assert len(h["x-request-id"]) == 36
    with service.client() as anonymous:
        docs = anonymous.get("/docs")
        # the documentation has its own policy (assets served here, no CDN): tests/e2e/test_api_docs.py
        assert docs.status_code == 200 and "script-src 'self'" in docs.headers["content-security-policy"]
        assert docs.headers["x-frame-options"] == "DENY"


def test_hsts_when_configured(settings: Settings) -> None:
    with running_service(settings.model_copy(update={"hsts_max_age_s": 31536000}), factories=[]) as svc:
        with svc.client() as client:
            assert client.get("/healthz").headers["strict-transport-security"] == "max-age=31536000"


def test_cors_is_off_by_default(service: RunningService) -> None:
    with service.client() as client:
        preflight = client.options(
            "/v1/patients",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in preflight.headers
        r = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_cors_allows_only_configured_origins(settings: Settings) -> None:
    allowed = "https://portal.clinic.example"
    with running_service(settings.model_copy(update={"cors_origins": [allowed]}), factories=[]) as svc:
        with svc.client() as client:
            ok = client.options(
                "/v1/patients",
                headers={
                    "Origin": allowed,
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization",
                },
            )
            assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == allowed
            assert "access-control-allow-credentials" not in ok.headers
            bad = client.options(
                "/v1/patients",
                headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
            )
            assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("", True),
        ("https://a.example, http://localhost:3000", True),
        ("*", True),
        ("https://a.example/path", False),
        ("javascript:alert(1)", False),
        ("https://a.example\r\nX-Evil: 1", False),
    ],
)
def test_cors_origins_setting_is_validated(value: str, ok: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPM_CORS_ORIGINS", value)
    if ok:
        assert isinstance(load_settings(_env_file=None).cors_origins, list)
    else:
        with pytest.raises(ConfigurationError, match="RPM_CORS_ORIGINS"):
            load_settings(_env_file=None)


def raw_request(svc: RunningService, head: bytes) -> bytes:
    host, port = svc.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_oversized_headers_are_refused_before_the_app(service: RunningService) -> None:
    token = service.token("admin")
    big = b"X-Filler: " + b"a" * (service.services.settings.max_header_bytes + 1) + b"\r\n"
    answer = raw_request(
        service,
        b"GET /v1/patients HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\n"
        + big
        + b"Connection: close\r\n\r\n",
    )
    refused = (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 431 Request Header Fields Too Large")
    assert answer.split(b"\r\n", 1)[0] in refused
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(3000))
    answer = raw_request(
        service, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"Connection: close\r\n\r\n"
    )
    assert answer.split(b"\r\n", 1)[0] in refused
    with service.services.pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    assert row == (0,)  # never reached the application
    ok = raw_request(
        service,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 4000 + b"\r\nConnection: close\r\n\r\n",
    )
    assert ok.startswith(b"HTTP/1.1 200")


def test_body_size_and_readings_per_request(settings: Settings) -> None:
    with running_service(
        settings.model_copy(update={"max_body_bytes": 4096, "max_readings_per_message": 5}), factories=[]
    ) as svc:
        with svc.client(svc.token("admin")) as client:
            r = client.post(
                "/v1/patients",
                content=b"{" + b" " * 5000 + b"}",
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code == 413
            reading = {
                "metric": "heart_rate",
                "value": 70,
                "unit": "/min",
                "measured_at": "2026-01-01T00:00:00Z",
            }
            r = client.post("/v1/readings", json={"device_id": "D-1", "readings": [reading] * 6})
            assert r.status_code == 413 and "at most 5" in r.json()["detail"]
            # a chunked body (no Content-Length) is cut off as it streams in
            r = client.post("/v1/readings", content=iter([b"x" * 3000, b"y" * 3000]))
            assert r.status_code == 413
