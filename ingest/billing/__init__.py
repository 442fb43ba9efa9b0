"""The RPM programme and its billing: clinic time zones, monitoring episodes, clinician time, and
the monthly report of the CPT 2026 codes each patient earned (contract: docs/contract/billing.md,
rules as implemented: docs/billing.md).

Modules: :mod:`~ingest.billing.rules` (the code table as pure functions: days and minutes in,
codes and progress out), :mod:`~ingest.billing.months` (month and time-zone parsing, pure),
:mod:`~ingest.billing.episodes` (episode SQL; :func:`end_monitoring` for other features),
:mod:`~ingest.billing.time_entries` (clinician time SQL), :mod:`~ingest.billing.reading_days`
(the days with readings the report counts, and the ingest hook that writes them),
:mod:`~ingest.billing.queries` (the report's counting query), :mod:`~ingest.billing.report`
(rows to the report and its CSV), :mod:`~ingest.billing.routes` and
:mod:`~ingest.billing.schemas` (the API),
:mod:`~ingest.billing.errors` and :mod:`~ingest.billing.component`.
"""
