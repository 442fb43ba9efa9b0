"""The dashboard as a service component: its static-file router and its read-only API."""

from __future__ import annotations

from ingest.components import Component
from ingest.dashboard.api_routes import router as api_router
from ingest.dashboard.static_routes import build_router
from ingest.services import Services


def dashboard_component(services: Services) -> Component:
    return Component(name="dashboard", routers=(build_router(), api_router))
