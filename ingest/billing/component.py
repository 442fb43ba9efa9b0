"""Wires billing into the service: its API router and the hook that records the days with
readings in the ingest transaction (episodes follow device assignments in the database, and the
report is counted when asked for)."""

from __future__ import annotations

from ingest.billing import routes
from ingest.billing.reading_days import ReadingDaysWriter
from ingest.components import Component
from ingest.services import Services


def billing_component(services: Services) -> Component:
    return Component(name="billing", routers=(routes.router,), hooks=(ReadingDaysWriter(),))
