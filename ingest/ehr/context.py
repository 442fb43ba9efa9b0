"""What the EHR routes need from the running component, and the dependency that hands it over
(as :mod:`ingest.export.context` does for the export)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends

from ingest.api.deps import ServicesDep
from ingest.ehr.importer import GroupImport
from ingest.ehr.linker import Linker
from ingest.services import Services

EXTRAS_KEY: Final = "ehr"


@dataclass
class EhrContext:
    """``importer`` is None without an EHR or without the MRN identifier system."""

    linker: Linker
    importer: GroupImport | None


def ehr_context(services: Services) -> EhrContext:
    ctx = services.extras.get(EXTRAS_KEY)
    if not isinstance(ctx, EhrContext):
        raise RuntimeError("the EHR component is not installed")
    return ctx


def get_ehr(services: ServicesDep) -> EhrContext:
    return ehr_context(services)


EhrDep = Annotated[EhrContext, Depends(get_ehr)]
