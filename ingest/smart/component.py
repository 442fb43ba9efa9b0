"""SMART on FHIR app launch as a service component: its router (no background work).

The routes are always there; without ``RPM_SMART_ISSUERS`` every launch is refused with a page
saying SMART launch is not configured.
"""

from __future__ import annotations

from ingest.components import Component
from ingest.services import Services
from ingest.smart.discovery import Discovery
from ingest.smart.flow import SmartLaunch
from ingest.smart.routes import build_router


def smart_component(services: Services) -> Component:
    flow = SmartLaunch(services, Discovery(timeout_s=services.settings.smart_timeout_s))
    return Component(name="smart", routers=(build_router(flow),))
