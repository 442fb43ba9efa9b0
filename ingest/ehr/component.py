"""Wires the EHR's patients into the service: the link loop, the Group import and their routes.

Without ``RPM_FHIR_BASE_URL`` (or without ``RPM_FHIR_PATIENT_IDENTIFIER_SYSTEM``) nothing is
looked up: unlinked patients show ``pending`` with the reason, and the import answers 409.
"""

from __future__ import annotations

import logging

from fhir_export.auth import PATIENT_READ_SCOPE
from fhir_export.client import build_http_client
from fhir_export.errors import FhirExportError
from fhir_export.factory import build_auth
from fhir_export.reads import FhirReader
from ingest.components import Component
from ingest.ehr import routes
from ingest.ehr.context import EXTRAS_KEY, EhrContext
from ingest.ehr.importer import GroupImport
from ingest.ehr.linker import Linker
from ingest.errors import ConfigurationError
from ingest.services import Services

logger = logging.getLogger(__name__)


def ehr_component(services: Services) -> Component:
    s = services.settings
    system = s.fhir_patient_identifier_system or None
    reader: FhirReader | None = None
    http = None
    if s.fhir_base_url:
        http = build_http_client(timeout_s=s.fhir_timeout_s)
        try:
            auth = build_auth(
                s.fhir_auth,
                http,
                base_url=s.fhir_base_url,
                token=s.fhir_token.get_secret_value() if s.fhir_token else None,
                client_id=s.fhir_client_id,
                private_key_file=s.fhir_private_key_file,
                token_url=s.fhir_token_url,
                scope=PATIENT_READ_SCOPE,
            )
        except FhirExportError as exc:
            http.close()
            raise ConfigurationError(f"EHR patient reads: {exc}") from exc
        reader = FhirReader(http, s.fhir_base_url, auth)
    linker = Linker(services.pool, reader, identifier_system=system, retry_s=s.fhir_patient_lookup_retry_s)
    importer = None
    if reader is not None and system is not None:
        importer = GroupImport(
            services.pool, reader, identifier_system=system, max_members=s.fhir_import_max_members
        )
    elif reader is not None:
        logger.info("no RPM_FHIR_PATIENT_IDENTIFIER_SYSTEM: patients are not looked up in the EHR by MRN")
    ctx = EhrContext(linker, importer)
    services.extras[EXTRAS_KEY] = ctx

    def stop() -> None:
        linker.stop()
        if http is not None:
            http.close()

    return Component(
        name="ehr patients",
        routers=(routes.router,),
        start=linker.start,
        stop=stop,
        extras={EXTRAS_KEY: ctx},
    )
