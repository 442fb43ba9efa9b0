"""Dead letters: list poison input (admin), see what floods it, and replay one through the pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Query

from ingest.api.deps import AdminDep, ServicesDep
from ingest.api.schemas import (
    DeadLetterFlood,
    DeadLetterPublic,
    DeadLettersPage,
    DeadLetterSummary,
    RejectionOut,
    ReplayResult,
)
from ingest.pipeline import Envelope, Outcome
from ingest.store import deadletters as store

router = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"])

_RAW_PREVIEW = 64 * 1024
_FLOODS_SHOWN = 100
_NEAR_CAP = 0.9  # warn when the table holds this share of its cap


def _public(row: dict[str, Any]) -> DeadLetterPublic:
    raw: bytes = bytes(row.pop("raw"))
    return DeadLetterPublic(
        **row,
        raw=raw[:_RAW_PREVIEW].decode("utf-8", errors="replace"),
        raw_size=len(raw),
        summary=row["window_start"] is not None,
    )


@router.get("", response_model=DeadLettersPage)
def list_dead_letters(
    services: ServicesDep,
    _: AdminDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, description="page: ids below this one")] = None,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
    summaries: Annotated[
        bool, Query(description="only summary rows (letters over the limit, counted)")
    ] = False,
) -> DeadLettersPage:
    with services.transaction() as conn:
        rows = store.list_dead_letters(
            conn, limit=limit, before_id=before_id, device_id=device_id, summaries_only=summaries
        )
    return DeadLettersPage(dead_letters=[_public(r) for r in rows])


@router.get("/summary", response_model=DeadLetterSummary)
def summary(
    services: ServicesDep,
    _: AdminDep,
    hours: Annotated[int, Query(ge=1, le=24 * 366, description="look back this far")] = 24,
) -> DeadLetterSummary:
    """The dead-letter bounds, the table's size and the devices (or topics) that went over the
    limit lately, with warnings an administrator should act on (register or fix the device)."""
    s = services.settings
    since = datetime.now(UTC) - timedelta(hours=hours)
    with services.transaction() as conn:
        rows = store.count_dead_letters(conn)
        found = store.recent_summaries(conn, since=since, limit=_FLOODS_SHOWN)
    floods = [
        DeadLetterFlood(
            id=r["id"], source=r["source"], device_id=r["device_id"], topic=r["topic"],
            window_start=r["window_start"], first_seen=r["first_seen"], last_seen=r["last_seen"],
            kept=s.dead_letter_limit, suppressed_count=r["suppressed_count"], reason=r["reason"],
        )
        for r in found
    ]
    warnings: list[str] = []
    if floods:
        keys = sorted({f.device_id or f.topic or f.source for f in floods})
        shown = ", ".join(keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
        warnings.append(
            f"{len(keys)} device(s) or topic(s) sent more than {s.dead_letter_limit} refused"
            f" messages per {s.dead_letter_window_s} s in the last {hours} h: {shown}."
            " The excess is counted, not kept; register or fix the device."
        )
    if s.dead_letter_max_rows and rows >= _NEAR_CAP * s.dead_letter_max_rows:
        warnings.append(
            f"the dead-letter table holds {rows} rows, near or over its cap of"
            f" {s.dead_letter_max_rows}: the oldest are deleted beyond it."
        )
    return DeadLetterSummary(
        limit_per_window=s.dead_letter_limit, window_s=s.dead_letter_window_s,
        max_rows=s.dead_letter_max_rows, retention_days=s.dead_letter_retention_days,
        rows=rows, since=since, floods=floods, warnings=warnings,
    )


@router.post("/{letter_id}/replay", response_model=ReplayResult)
def replay(letter_id: int, services: ServicesDep, _: AdminDep) -> ReplayResult:
    """Run a dead letter through the pipeline again (e.g. after its device was registered).

    A replay that fails again creates no new dead letter; the result is recorded on the row, in
    the transaction that stores what the replay accepted. A summary row replays its sample (the
    letters it counted were not kept).
    """
    with services.transaction() as conn:
        row = store.get_dead_letter(conn, letter_id)
    if row is None:
        raise HTTPException(404, f"dead letter {letter_id} not found")
    now = datetime.now(UTC)
    envelope = Envelope(
        source=f"replay:{row['source']}",
        raw=bytes(row["raw"]),
        received_at=now,
        device_id=row["device_id"],
        topic=row["topic"],
    )

    def record(conn: psycopg.Connection[Any], outcomes: list[Outcome]) -> None:
        store.mark_replayed(conn, letter_id, at=now, result=_result(outcomes[0]))

    [outcome] = services.ingest("replay", [envelope], dead_letter=False, before_commit=record)
    return ReplayResult(
        id=letter_id,
        accepted=outcome.accepted,
        duplicates=outcome.duplicates,
        rejected=[RejectionOut(index=r.index, reason=r.reason) for r in outcome.rejected],
        error=outcome.error,
    )


def _result(outcome: Outcome) -> str:
    if outcome.error:
        return f"failed: {outcome.error}"
    if outcome.rejected:
        return "rejected: " + "; ".join(r.reason for r in outcome.rejected)
    return f"stored {outcome.accepted}, duplicates {outcome.duplicates}"
