"""The FHIR export outbox on PostgreSQL: rows written with the readings, claimed by workers.

* :mod:`ingest.export.outbox.writer` — :class:`OutboxWriter`, the pipeline hook that writes rows inside
  the ingest transaction (which readings share a row is :mod:`fhir_export.panels`);
* :mod:`ingest.export.outbox.claims` — :class:`PgOutbox`, the :class:`fhir_export.outbox.Outbox` the
  export workers claim rows from;
* :mod:`ingest.export.outbox.items` — rows for items kept in tables of their own (ECG strips, alerts);
* :mod:`ingest.export.outbox.rows` — what a row keeps of its readings and the reasons it shows.
"""

from ingest.export.outbox.claims import (
    ClaimedRow,
    PatientInfo,
    PgClaim,
    PgOutbox,
    RowReader,
    Unlinked,
    fhir_reader,
)
from ingest.export.outbox.items import NewItem, enqueue_items
from ingest.export.outbox.rows import (
    LATE_REASON,
    MAX_REASON,
    WAITING_REASON,
    reading_from_json,
    reading_json,
    row_readings,
)
from ingest.export.outbox.writer import OutboxWriter

__all__ = [
    "LATE_REASON",
    "NewItem",
    "enqueue_items",
    "MAX_REASON",
    "WAITING_REASON",
    "OutboxWriter",
    "PgClaim",
    "ClaimedRow",
    "PatientInfo",
    "PgOutbox",
    "RowReader",
    "Unlinked",
    "fhir_reader",
    "reading_from_json",
    "reading_json",
    "row_readings",
]
