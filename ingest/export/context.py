"""What the export routes need from the running export component, and the dependency that hands
it over.

The component stores an :class:`ExportContext` in ``services.extras``; a route asks for it with
:data:`ExportDep` (``None`` when the component is not installed). So routes and component know this
small module, not each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Final

from fastapi import Depends

from fhir_export.table import MappingTable
from fhir_export.worker import ExportStats
from ingest.api.deps import ServicesDep
from ingest.export.delivery import Delivery, ErrorCount
from ingest.export.outbox import OutboxWriter
from ingest.services import Services

EXTRAS_KEY: Final = "fhir_export"


@dataclass
class ExportContext:
    """What the export routes and the tests reach through ``services.extras["fhir_export"]``."""

    table: MappingTable
    writer: OutboxWriter
    delivery: Delivery | None
    errors: ErrorCount = field(default_factory=ErrorCount)

    @property
    def enabled(self) -> bool:
        return self.delivery is not None

    def stats(self) -> list[ExportStats]:
        return [] if self.delivery is None else [w.stats for w in self.delivery.workers]


def export_context(services: Services) -> ExportContext | None:
    ctx = services.extras.get(EXTRAS_KEY)
    return ctx if isinstance(ctx, ExportContext) else None


def get_export(services: ServicesDep) -> ExportContext | None:
    return export_context(services)


ExportDep = Annotated[ExportContext | None, Depends(get_export)]
