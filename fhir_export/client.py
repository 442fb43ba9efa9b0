"""The EHR client: the only code that sends FHIR requests to the EHR.

It posts transaction Bundles, retries transient failures (network errors, timeouts, 5xx, 429)
with exponential backoff and jitter, honours ``Retry-After``, refreshes an expired access token
once on 401, and turns the answer into per-entry outcomes or an error that says what to do next.
Waits longer than ``RetryPolicy.max_wait_s`` are not slept here: the error goes back to the
caller, which defers the work (the outbox keeps it) instead of holding a worker.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Final

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from fhir_export.auth import Auth
from fhir_export.bundle import EntryOutcome, parse_transaction_response, raise_for_outcome
from fhir_export.errors import AuthError, TransientDeliveryError

logger = logging.getLogger(__name__)

FHIR_JSON: Final = "application/fhir+json"
MAX_RETRY_AFTER_S: Final = 3600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries inside one call; longer outages are the caller's (the outbox's) to wait out."""

    attempts: int = 3
    initial_s: float = 0.5
    max_wait_s: float = 10.0
    jitter_s: float = 0.5


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(max(0.0, moment.timestamp() - now), MAX_RETRY_AFTER_S)


class FhirClient:
    """Posts transaction Bundles to one FHIR base URL."""

    def __init__(
        self,
        http: httpx.Client,
        base_url: str,
        auth: Auth,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._auth = auth
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self.requests_sent = 0

    @property
    def base_url(self) -> str:
        return self._base_url

    def transaction(self, bundle: dict[str, Any]) -> list[EntryOutcome]:
        """Send a transaction; return per-entry outcomes, or raise a ``FhirExportError``."""
        payload = json.dumps(bundle, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        expected = len(bundle.get("entry", []))
        policy = self._retry
        backoff = wait_exponential_jitter(
            multiplier=policy.initial_s, max=policy.max_wait_s, jitter=policy.jitter_s
        )

        def wait(state: RetryCallState) -> float:
            computed = backoff(state)
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, TransientDeliveryError) and error.retry_after is not None:
                return max(computed, error.retry_after)
            return computed

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= policy.attempts:
                return True
            error = state.outcome.exception() if state.outcome else None
            # A server asking for a long pause is not hammered: the caller defers instead.
            return (
                isinstance(error, TransientDeliveryError)
                and error.retry_after is not None
                and error.retry_after > policy.max_wait_s
            )

        retrying = Retrying(
            retry=retry_if_exception_type(TransientDeliveryError),
            wait=wait,
            stop=stop,
            sleep=self._sleep,
            reraise=True,
            before_sleep=_log_retry,
        )
        for attempt in retrying:
            with attempt:
                return self._post_once(payload, expected)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post_once(self, payload: bytes, expected: int) -> list[EntryOutcome]:
        answer = self._send(payload)
        if answer.status_code == 401 and self._auth.invalidate():
            logger.info("EHR refused the access token; fetching a new one")
            answer = self._send(payload)
        status = answer.status_code
        if status in (401, 403):
            raise AuthError(f"EHR answered HTTP {status} to an authenticated request", transient=False)
        body = _json_or_none(answer)
        if 200 <= status < 300:
            return parse_transaction_response(body, expected)
        retry_after = parse_retry_after(answer.headers.get("Retry-After"), time.time())
        raise_for_outcome(status, body, retry_after)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, payload: bytes) -> httpx.Response:
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, **self._auth.headers()}
        self.requests_sent += 1
        try:
            return self._http.post(self._base_url, content=payload, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError(f"EHR timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise TransientDeliveryError(f"EHR unreachable ({type(exc).__name__})") from exc


def _json_or_none(answer: httpx.Response) -> object:
    try:
        return answer.json()
    except ValueError:
        return None


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    logger.warning(
        "EHR transaction attempt %d failed (%s); retrying in %.1fs",
        state.attempt_number, type(error).__name__, wait,
    )  # fmt: skip
    logger.debug("EHR transaction attempt %d failed: %s", state.attempt_number, error)


def build_http_client(*, timeout_s: float = 30.0, connect_timeout_s: float = 5.0) -> httpx.Client:
    """An httpx client for the EHR: bounded timeouts, keep-alive, no transport-level retries."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        transport=httpx.HTTPTransport(retries=0),
        headers={"User-Agent": "rpm-ingest-fhir-export"},
        follow_redirects=False,
    )


__all__ = ["FhirClient", "RetryPolicy", "build_http_client", "parse_retry_after"]
