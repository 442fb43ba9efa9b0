"""Dead letters: list poison input (admin) and replay one through the pipeline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Query

from ingest.api.deps import AdminDep, ServicesDep
from ingest.api.schemas import DeadLetterPublic, DeadLettersPage, RejectionOut, ReplayResult
from ingest.pipeline import Envelope, Outcome
from ingest.store import deadletters as store

router = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"])

_RAW_PREVIEW = 64 * 1024


def _public(row: dict[str, Any]) -> DeadLetterPublic:
    raw: bytes = bytes(row.pop("raw"))
    return DeadLetterPublic(
        **row, raw=raw[:_RAW_PREVIEW].decode("utf-8", errors="replace"), raw_size=len(raw)
    )


@router.get("", response_model=DeadLettersPage)
def list_dead_letters(
    services: ServicesDep,
    _: AdminDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, description="page: ids below this one")] = None,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
) -> DeadLettersPage:
    with services.transaction() as conn:
        rows = store.list_dead_letters(conn, limit=limit, before_id=before_id, device_id=device_id)
    return DeadLettersPage(dead_letters=[_public(r) for r in rows])


@router.post("/{letter_id}/replay", response_model=ReplayResult)
def replay(letter_id: int, services: ServicesDep, _: AdminDep) -> ReplayResult:
    """Run a dead letter through the pipeline again (e.g. after its device was registered).

    A replay that fails again creates no new dead letter; the result is recorded on the row, in
    the transaction that stores what the replay accepted.
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
