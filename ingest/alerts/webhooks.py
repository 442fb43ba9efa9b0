"""Outbound webhooks per clinic: signed JSON POSTs of alert events, retried with backoff, logged.

Deliveries are rows written in the transaction that wrote the event, so none is lost if the
process dies. Workers claim due rows with a lease (``FOR UPDATE SKIP LOCKED``), so several
processes share the work and a delivery whose worker died is retried when the lease runs out.
Delivery is at least once: receivers de-duplicate on ``X-RPM-Delivery`` (or the event id).

Signature: ``X-RPM-Signature: sha256=<hex HMAC-SHA256(secret, "<X-RPM-Timestamp>." + body)>``.

Destinations are judged at every attempt (:mod:`ingest.alerts.webhook_policy`, enforced where the
connection is opened: :mod:`ingest.alerts.webhook_client`). A refused destination fails the
delivery at once, with the reason in the delivery log: retrying cannot change the verdict, only
the operator's allow-list can. Redirects are not followed (a 3xx is a failed attempt, retried like
any answer but 2xx) and at most 64 KiB of an answer is read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import httpx
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ingest.alerts.webhook_client import (
    Resolver,
    check_new_destination,
    drain_capped,
    resolve,
    webhook_client,
)
from ingest.alerts.webhook_policy import DestinationRefused, IPNetwork, url_refusal
from ingest.errors import AlertsError

logger = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "X-RPM-Signature"
TIMESTAMP_HEADER: Final = "X-RPM-Timestamp"
LEASE_S: Final = 120
IDLE_WAIT_S: Final = 5.0
BATCH: Final = 20
USER_AGENT: Final = "rpm-ingest-webhooks/1"
WEBHOOK_COLUMNS: Final = (
    "id, clinic_id, url, description, min_severity, event_types, enabled, created_at, created_by, disabled_at"
)


class WebhookError(AlertsError):
    """A webhook definition that cannot be used (bad URL...)."""


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (also used by the tests): constant-time compare of the signature."""
    if not timestamp.isdigit():
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float
    max_s: float

    def delay(self, attempt: int) -> float:
        """Exponential with +-20% jitter: base, 2 base, 4 base... capped."""
        raw: float = min(self.base_s * (2.0 ** max(attempt - 1, 0)), self.max_s)
        return raw * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security


# --------------------------------------------------------------------------- management SQL


def create_webhook(
    conn: psycopg.Connection[Any],
    *,
    clinic_id: str,
    url: str,
    description: str | None,
    min_severity: str,
    event_types: list[str],
    created_by: str,
) -> dict[str, Any]:
    secret = new_secret()
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO alert_webhooks (clinic_id, url, secret, description, min_severity,"
            " event_types, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            f" RETURNING {WEBHOOK_COLUMNS}, secret",
            (clinic_id, url, secret, description, min_severity, event_types, created_by),
        )
        row = cur.fetchone()
    assert row is not None
    return row


def list_webhooks(conn: psycopg.Connection[Any], clinic_id: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {WEBHOOK_COLUMNS} FROM alert_webhooks WHERE clinic_id = %s ORDER BY created_at",
            (clinic_id,),
        )
        return cur.fetchall()


def get_webhook(conn: psycopg.Connection[Any], clinic_id: str, webhook_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {WEBHOOK_COLUMNS} FROM alert_webhooks WHERE clinic_id = %s AND id = %s",
            (clinic_id, webhook_id),
        )
        return cur.fetchone()


def disable_webhook(conn: psycopg.Connection[Any], clinic_id: str, webhook_id: UUID) -> bool:
    row = conn.execute(
        "UPDATE alert_webhooks SET enabled = false, disabled_at = now()"
        " WHERE clinic_id = %s AND id = %s AND enabled RETURNING id",
        (clinic_id, webhook_id),
    ).fetchone()
    return row is not None


def deliveries(
    conn: psycopg.Connection[Any], webhook_id: UUID, *, limit: int, before_id: int | None
) -> list[dict[str, Any]]:
    """The delivery log of one webhook, newest first, each with its attempts."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT d.id, d.event_id, e.type AS event_type, e.alert_id, d.status, d.attempts,"
            " d.next_attempt_at, d.last_status_code, d.last_error, d.created_at, d.delivered_at,"
            " coalesce((SELECT jsonb_agg(jsonb_build_object('attempt', a.attempt,"
            "   'started_at', a.started_at, 'duration_ms', a.duration_ms,"
            "   'status_code', a.status_code, 'error', a.error) ORDER BY a.attempt)"
            "   FROM webhook_attempts a WHERE a.delivery_id = d.id), '[]'::jsonb) AS attempt_log"
            " FROM webhook_deliveries d JOIN alert_events e ON e.id = d.event_id"
            " WHERE d.webhook_id = %s AND (%s::bigint IS NULL OR d.id < %s)"
            " ORDER BY d.id DESC LIMIT %s",
            (webhook_id, before_id, before_id, limit),
        )
        return cur.fetchall()


# --------------------------------------------------------------------------- delivery


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    attempt: int
    url: str
    secret: str
    enabled: bool
    event_id: int
    event_type: str
    at: datetime
    alert: dict[str, Any]


def payload_text(event_type: str, alert: dict[str, Any]) -> str:
    """The event in one line for people (a chat message): ``Critical alert opened: Systolic blood
    pressure 185 mmHg above critical high 180``. The alert's message is already in display units."""
    severity = str(alert.get("severity") or "").capitalize()
    message = str(alert.get("message") or "")
    return f"{severity} alert {event_type.replace('_', ' ')}: {message[:1].upper()}{message[1:]}".strip()


class WebhookWorker:
    def __init__(
        self,
        pool: ConnectionPool,
        *,
        timeout_s: float,
        max_attempts: int,
        backoff: Backoff,
        allow_networks: Sequence[IPNetwork] = (),
        resolver: Resolver = resolve,
        on_result: Callable[[str], None] | None = None,
    ) -> None:
        """``allow_networks``: internal networks deliveries may reach (``RPM_WEBHOOK_ALLOW_NETWORKS``);
        ``resolver``: how host names become addresses, for registration and delivery alike."""
        self.pool = pool
        self._allow = tuple(allow_networks)
        self._resolve = resolver
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.timeout_s = timeout_s
        self._on_result = on_result
        self._client = webhook_client(
            timeout_s=timeout_s, allow=self._allow, user_agent=USER_AGENT, resolver=resolver
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_destination(self, url: str) -> None:
        """The check when a webhook is registered (:class:`DestinationRefused` if refused), with
        the same allow-list and resolver as the deliveries."""
        check_new_destination(url, self._allow, resolver=self._resolve)

    def wake(self, *_: object) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="alert-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.run_once()
            except psycopg.Error as exc:
                logger.warning("webhook delivery pass failed (%s)", type(exc).__name__)
                done = 0
            except Exception:
                logger.exception("webhook delivery pass failed")
                done = 0
            if done == 0:
                self._wake.wait(self._idle_wait())
                self._wake.clear()

    def _idle_wait(self) -> float:
        """Until the next retry falls due (new events wake the worker earlier), at most 5 s."""
        try:
            with self.pool.connection() as conn:
                row = conn.execute(
                    "SELECT extract(epoch FROM min(next_attempt_at) - now())::float8"
                    " FROM webhook_deliveries WHERE status = 'pending'"
                ).fetchone()
        except psycopg.Error:
            return IDLE_WAIT_S
        due = row[0] if row and row[0] is not None else IDLE_WAIT_S
        return float(min(max(due, 0.01), IDLE_WAIT_S))

    def run_once(self) -> int:
        """Claim due deliveries and attempt each once; returns how many were attempted."""
        claimed = self._claim()
        for item in claimed:
            if self._stop.is_set():
                break
            self._deliver(item)
        return len(claimed)

    def _claim(self) -> list[Claimed]:
        with self.pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "UPDATE webhook_deliveries d SET attempts = d.attempts + 1,"
                " next_attempt_at = now() + make_interval(secs => %s)"
                " FROM (SELECT id FROM webhook_deliveries WHERE status = 'pending'"
                "   AND next_attempt_at <= now() ORDER BY next_attempt_at, id LIMIT %s"
                "   FOR UPDATE SKIP LOCKED) c"
                " WHERE d.id = c.id RETURNING d.id, d.attempts, d.webhook_id, d.event_id",
                (LEASE_S, BATCH),
            )
            rows = cur.fetchall()
            if not rows:
                return []
            cur.execute(
                "SELECT d.id, w.url, w.secret, w.enabled, e.type, e.at, e.alert"
                " FROM webhook_deliveries d JOIN alert_webhooks w ON w.id = d.webhook_id"
                " JOIN alert_events e ON e.id = d.event_id WHERE d.id = ANY(%s)",
                ([r["id"] for r in rows],),
            )
            info = {r["id"]: r for r in cur.fetchall()}
        out = []
        for r in sorted(rows, key=lambda r: r["event_id"]):
            i = info[r["id"]]
            out.append(
                Claimed(
                    id=r["id"],
                    attempt=r["attempts"],
                    url=i["url"],
                    secret=i["secret"],
                    enabled=i["enabled"],
                    event_id=r["event_id"],
                    event_type=i["type"],
                    at=i["at"],
                    alert=i["alert"],
                )
            )
        return out

    def _deliver(self, item: Claimed) -> None:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        refused = False
        if not item.enabled:
            error = "webhook disabled"
        elif (reason := url_refusal(item.url)) is not None:
            error, refused = f"destination refused: {reason}", True
        else:
            body = json.dumps(
                {
                    "delivery_id": item.id,
                    "event_id": item.event_id,
                    "type": item.event_type,
                    "occurred_at": item.at.isoformat().replace("+00:00", "Z"),
                    "alert": item.alert,
                    "text": payload_text(item.event_type, item.alert),
                },
                separators=(",", ":"),
            ).encode()
            ts = int(time.time())
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: str(ts),
                SIGNATURE_HEADER: sign(item.secret, ts, body),
                "X-RPM-Event": item.event_type,
                "X-RPM-Event-Id": str(item.event_id),
                "X-RPM-Delivery": str(item.id),
            }
            try:
                status_code = self._post(item.url, body, headers)
                if 300 <= status_code < 400:
                    error = f"HTTP {status_code}: redirect not followed"
                elif not 200 <= status_code < 300:
                    error = f"HTTP {status_code}"
            except DestinationRefused as exc:
                error, refused = f"destination refused: {exc.reason}"[:1000], True
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:1000]
        duration_ms = int((time.perf_counter() - t0) * 1000)
        delivered = error is None
        final = delivered or refused or not item.enabled or item.attempt >= self.max_attempts
        outcome = "delivered" if delivered else ("failed" if final else "retry")
        delay = 0.0 if final else self.backoff.delay(item.attempt)
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms,"
                " status_code, error) VALUES (%s, %s, %s, %s, %s, %s)",
                (item.id, item.attempt, started, duration_ms, status_code, error),
            )
            conn.execute(
                "UPDATE webhook_deliveries SET status = %s, last_status_code = %s, last_error = %s,"
                " delivered_at = CASE WHEN %s THEN now() END,"
                " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
                (
                    "delivered" if delivered else ("failed" if final else "pending"),
                    status_code,
                    error,
                    delivered,
                    delay,
                    item.id,
                ),
            )
        if refused:
            logger.warning("webhook delivery %d refused by the destination policy (%s)", item.id, error)
        elif outcome != "delivered":
            logger.info("webhook delivery %d attempt %d: %s (%s)", item.id, item.attempt, outcome, error)
        if self._on_result is not None:
            self._on_result(outcome)

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST; read at most about 64 KiB of the answer within the timeout; its status code.
        Raises :class:`DestinationRefused` or ``httpx.HTTPError``."""
        deadline = time.monotonic() + self.timeout_s
        with self._client.stream("POST", url, content=body, headers=headers) as response:
            drain_capped(response, deadline=deadline)
            return response.status_code
