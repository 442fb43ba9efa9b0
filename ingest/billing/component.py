"""Wires billing into the service: its API router (no hooks, no background work: episodes follow
device assignments in the database, and the report is counted when asked for)."""

from __future__ import annotations

from ingest.billing import routes
from ingest.components import Component
from ingest.services import Services


def billing_component(services: Services) -> Component:
    return Component(name="billing", routers=(routes.router,))
