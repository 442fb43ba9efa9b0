"""Dead letters are bounded per source and device (else topic) and window: the first ones kept in
full, the rest counted exactly into one summary row per key and window; several writers keep one
count; HTTP bad bodies alike; the summary endpoint shows the flooding keys."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ingest.settings import Settings
from ingest.store.deadletters import DeadLetter, DeadLetterLimit, insert_dead_letters
from tests.support.service import RunningService, running_service

T0 = datetime(2026, 12, 5, 6, 0, 10, tzinfo=UTC)  # 10 s into a minute window
LIMIT = DeadLetterLimit(per_window=3, window_s=60)


def unknown(device: str, i: int = 0) -> DeadLetter:
    return DeadLetter.build(
        "mqtt", f"device {device!r} is not registered", b'{"n": %d}' % i,
        topic=f"rpm/{device}/readings", device_id=device,
    )


def rows(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT device_id, reason, raw, received_at, suppressed_count, last_seen, window_start"
            " FROM dead_letters ORDER BY id"
        )
        return cur.fetchall()


def summaries(conn: psycopg.Connection[Any]) -> dict[tuple[str | None, datetime], int]:
    return {
        (r["device_id"], r["window_start"]): r["suppressed_count"]
        for r in rows(conn) if r["window_start"] is not None
    }


def test_first_letters_are_kept_the_rest_counted_into_one_summary_per_key_and_window(
    pool: ConnectionPool,
) -> None:
    with pool.connection() as conn, conn.transaction():
        batch = [unknown("A", i) for i in range(10)] + [unknown("B", i) for i in range(2)]
        written = insert_dead_letters(conn, batch, received_at=T0, limit=LIMIT)
    assert (written.kept, written.suppressed) == (5, {"mqtt": 7})
    assert [(f.key, f.window_start) for f in written.floods] == [("A", T0.replace(second=0))]
    with pool.connection() as conn:
        got = rows(conn)
        full = [(r["device_id"], bytes(r["raw"])) for r in got if r["window_start"] is None]
        assert full == [("A", b'{"n": 0}'), ("A", b'{"n": 1}'), ("A", b'{"n": 2}'),
                        ("B", b'{"n": 0}'), ("B", b'{"n": 1}')]
        [summary] = [r for r in got if r["window_start"] is not None]
        # the first suppressed letter is the sample; first and last seen
        assert bytes(summary["raw"]) == b'{"n": 3}' and "not registered" in summary["reason"]
        assert summary["suppressed_count"] == 7
        assert summary["received_at"] == summary["last_seen"] == T0

    later = T0 + timedelta(seconds=30)  # same window: only the summary grows (in place)
    with pool.connection() as conn, conn.transaction():
        written = insert_dead_letters(conn, [unknown("A", 20 + i) for i in range(5)], received_at=later,
                                      limit=LIMIT)
    assert (written.kept, written.suppressed, written.floods) == (0, {"mqtt": 5}, [])
    with pool.connection() as conn, conn.transaction():
        written = insert_dead_letters(conn, [unknown("B", 9)], received_at=later, limit=LIMIT)
    assert (written.kept, written.suppressed) == (1, {})  # B reaches its limit exactly: no summary
    with pool.connection() as conn:
        assert summaries(conn) == {("A", T0.replace(second=0)): 12}
        [summary] = [r for r in rows(conn) if r["window_start"] is not None]
        assert (summary["received_at"], summary["last_seen"]) == (T0, later)

    next_window = T0 + timedelta(seconds=60)  # a new window: three in full again, then a summary
    with pool.connection() as conn, conn.transaction():
        written = insert_dead_letters(conn, [unknown("A", 40 + i) for i in range(4)],
                                      received_at=next_window, limit=LIMIT)
    assert (written.kept, written.suppressed, len(written.floods)) == (3, {"mqtt": 1}, 1)
    with pool.connection() as conn:
        assert summaries(conn) == {("A", T0.replace(second=0)): 12, ("A", next_window.replace(second=0)): 1}
        # nothing lost: full rows + counted == letters written
        total = sum(1 if r["window_start"] is None else r["suppressed_count"] for r in rows(conn))
    assert total == 12 + 5 + 1 + 4


def test_without_a_limit_every_letter_is_kept_in_full(pool: ConnectionPool) -> None:
    with pool.connection() as conn, conn.transaction():
        written = insert_dead_letters(conn, [unknown("A", i) for i in range(50)], received_at=T0,
                                      limit=DeadLetterLimit(per_window=0))
        assert written.kept == 50 and not written.suppressed
        assert insert_dead_letters(conn, [], received_at=T0, limit=LIMIT).kept == 0
    with pool.connection() as conn:
        assert len(rows(conn)) == 50 and not summaries(conn)
        row = conn.execute("SELECT count(*) FROM dead_letter_windows").fetchone()
        assert row is not None and row[0] == 0  # no limit: no counting either


def test_concurrent_writers_keep_one_exact_count(db_url: str) -> None:
    """Four writers (their own connections, as several service processes would have), each
    committing many small batches for the same two keys at once."""
    writers, batches, per_batch = 4, 25, 7
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(w: int) -> None:
        try:
            with psycopg.connect(db_url) as conn:
                start.wait()
                for b in range(batches):
                    with conn.transaction():
                        letters = [unknown("A" if (w + b + i) % 2 else "B", i) for i in range(per_batch)]
                        insert_dead_letters(conn, letters, received_at=T0, limit=LIMIT)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with psycopg.connect(db_url) as conn:
        got = rows(conn)
    full = [r for r in got if r["window_start"] is None]
    assert sorted({r["device_id"] for r in full}) == ["A", "B"]
    assert all(sum(1 for r in full if r["device_id"] == key) == LIMIT.per_window for key in "AB")
    assert len(got) == 2 * LIMIT.per_window + 2  # one summary per key
    assert len(full) + sum(r["suppressed_count"] for r in got) == writers * batches * per_batch


FIXED = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def limited(settings: Settings) -> Iterator[RunningService]:
    update = {"dead_letter_limit": 5, "dead_letter_window_s": 3600}
    with running_service(settings.model_copy(update=update), factories=[]) as svc:
        svc.services.pipeline.clock = lambda: FIXED  # one window, whatever the wall clock does
        yield svc


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_http_bad_bodies_are_limited_counted_and_shown_to_an_admin(limited: RunningService) -> None:
    svc = limited
    admin = svc.client(svc.token("admin"))
    assert admin.post("/v1/devices", json={"id": "CUFF-F", "type": "bp_cuff"}).status_code == 201
    device = svc.client(svc.token("device", device="CUFF-F"))
    records = Records()
    logger = logging.getLogger("ingest.services")
    logger.addHandler(records)
    try:
        for i in range(30):
            r = device.post("/v1/readings", content=b'{"device_id": "CUFF-F", "readings": [%d' % i,
                            headers={"Content-Type": "application/json"})
            assert r.status_code == 400, r.text
    finally:
        logger.removeHandler(records)
    with svc.services.pool.connection() as conn:
        got = rows(conn)
    assert len(got) == 6 and [r["device_id"] for r in got] == ["CUFF-F"] * 6
    assert [r["suppressed_count"] for r in got] == [0, 0, 0, 0, 0, 25]
    metrics = svc.services.metrics.registry
    assert metrics.get_sample_value("rpm_dead_letters_suppressed_total", {"source": "http"}) == 25
    assert metrics.get_sample_value("rpm_messages_dead_lettered_total", {"source": "http"}) == 30
    warnings = [r.getMessage() for r in records.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "'CUFF-F'" in warnings[0] and "limit of 5" in warnings[0]

    page = admin.get("/v1/dead-letters").json()["dead_letters"]
    assert [x["summary"] for x in page] == [True] + [False] * 5  # newest first
    assert page[0]["suppressed_count"] == 25 and page[0]["window_start"] is not None
    assert page[1]["suppressed_count"] == 0 and page[1]["last_seen"] is None
    only = admin.get("/v1/dead-letters", params={"summaries": "true"}).json()["dead_letters"]
    assert [x["id"] for x in only] == [page[0]["id"]]

    summary = admin.get("/v1/dead-letters/summary").json()
    assert (summary["limit_per_window"], summary["window_s"], summary["rows"]) == (5, 3600, 6)
    [flood] = summary["floods"]
    assert (flood["device_id"], flood["kept"], flood["suppressed_count"]) == ("CUFF-F", 5, 25)
    assert flood["id"] == page[0]["id"] and flood["source"] == "http"
    assert len(summary["warnings"]) == 1 and "CUFF-F" in summary["warnings"][0]
    clinician = svc.client(svc.token("clinician", clinic="default"))
    assert clinician.get("/v1/dead-letters/summary").status_code == 403


def test_the_summary_is_quiet_when_nothing_floods(service: RunningService) -> None:
    admin = service.client(service.token("admin"))
    summary = admin.get("/v1/dead-letters/summary", params={"hours": 1}).json()
    assert summary["floods"] == [] and summary["warnings"] == [] and summary["rows"] == 0
    assert (summary["limit_per_window"], summary["max_rows"], summary["retention_days"]) == (100, 100_000, 30)
