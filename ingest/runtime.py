"""The composition root: builds everything from Settings, runs it, and takes it down in order.

It is the one module that names every feature: :func:`default_components` lists them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack
from types import TracebackType

from fastapi import APIRouter, FastAPI

from ingest.alerts.component import alerts_component
from ingest.api.app import create_app
from ingest.billing.component import billing_component
from ingest.components import Component, ComponentFactory
from ingest.dashboard.component import dashboard_component
from ingest.db.migrate import migrate
from ingest.db.pool import open_pool
from ingest.dicom.component import dicom_component
from ingest.ecg.component import ecg_component
from ingest.ehr.component import ehr_component
from ingest.embedded.broker import with_embedded_broker
from ingest.embedded.postgres import embedded_postgres
from ingest.export.component import fhir_export_component
from ingest.hl7.component import hl7_component
from ingest.limits import Limits
from ingest.metrics import Metrics
from ingest.mqtt.consumer import mqtt_component
from ingest.pipeline import Pipeline
from ingest.security.retention import retention_component
from ingest.services import Services
from ingest.settings import Settings
from ingest.smart.component import smart_component
from ingest.store.readings import prepare_session

logger = logging.getLogger(__name__)


def default_components() -> list[ComponentFactory]:
    """The components `serve` runs, in start order (they stop in reverse)."""
    return [
        alerts_component,
        billing_component,  # episodes, clinician time, the monthly report
        dashboard_component,
        retention_component,
        smart_component,  # SMART on FHIR launch of the dashboard from the EHR
        ecg_component,  # ECG strips: list and fetch API, outbox rows of new strips
        fhir_export_component,  # outbox hook + exports API; workers with an EHR
        dicom_component,  # ECG strips to the PACS over DICOMweb, with RPM_DICOMWEB_URL
        hl7_component,  # HL7 v2 over MLLP: ORU^R01 sender, ADT listener
        ehr_component,  # patients looked up in the EHR by MRN, Group import
        mqtt_component,  # keep last: starts after what it feeds, stops first
    ]


class Runtime:
    """Owns the database (embedded or not), the pool, the services and the components."""

    def __init__(
        self, settings: Settings, factories: Sequence[ComponentFactory] | None = None
    ) -> None:
        self.settings = settings
        self._factories = list(default_components() if factories is None else factories)
        self._stack = ExitStack()
        self.components: list[Component] = []
        self.services: Services | None = None
        self.app: FastAPI | None = None
        self.database_url: str | None = None

    def __enter__(self) -> Runtime:
        try:
            self.open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        # No RPM_MQTT_URL: an embedded broker, and settings that point at it.
        s = self.settings = with_embedded_broker(self.settings, self._stack)
        url = s.database_url
        if url is None:
            url = self._stack.enter_context(embedded_postgres(s.data_dir))
        self.database_url = url
        applied = migrate(url)
        if applied:
            logger.info("applied migrations %s", applied)
        pool = open_pool(url, min_size=s.db_pool_min, max_size=s.db_pool_max, prepare=prepare_session)
        self._stack.callback(pool.close)
        limits = Limits.from_settings(s)
        pipeline = Pipeline(rules=limits.message)
        self.services = Services(
            settings=s, pool=pool, pipeline=pipeline, metrics=Metrics(), limits=limits
        )
        routers: list[APIRouter] = []
        for factory in self._factories:
            component = factory(self.services)
            self.components.append(component)
            for hook in component.hooks:
                pipeline.add_hook(hook)
            for strip_hook in component.strip_hooks:
                pipeline.add_strip_hook(strip_hook)
            routers.extend(component.routers)
        self.app = create_app(self.services, extra_routers=tuple(routers))

    def start_components(self) -> None:
        """Start background work (consumers, workers, schedulers) in order."""
        for component in self.components:
            if component.start is not None:
                logger.info("starting %s", component.name)
                component.start()
            if component.stop is not None:
                self._stack.callback(_stopper(component))

    def close(self) -> None:
        """Stop components (reverse order), close the pool, stop embedded servers."""
        self._stack.close()


def _stopper(component: Component) -> ComponentStop:
    return ComponentStop(component)


class ComponentStop:
    def __init__(self, component: Component) -> None:
        self.component = component

    def __call__(self) -> None:
        logger.info("stopping %s", self.component.name)
        assert self.component.stop is not None
        self.component.stop()
