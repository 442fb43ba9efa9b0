"""The dashboard as a service component: its static-file router and its read-only API."""

from __future__ import annotations

from ingest.components import Component
from ingest.services import Services


def dashboard_component(services: Services) -> Component:
    from ingest.api.routes.dashboard_api import router as api_router
    from ingest.dashboard.routes import build_router

    return Component(name="dashboard", routers=(build_router(), api_router))
