"""``POST /v1/patients/import``: register the members of an EHR Group, linked.

Bounded at every step: the Group is read once (its answer at most ``FhirReader.max_bytes``), a
Group with more than ``max_members`` members is refused before anything is registered, members
are read ``page_size`` at a time (``Patient?_id=a,b,...``) and each page is registered in a
transaction of its own, so a 10,000-member Group never holds 10,000 Patients in memory nor one
long transaction. A member that cannot be registered is skipped with its reason, never guessed:
not a Patient, inactive in the Group, unknown to the EHR, without an MRN of the clinic's
identifier system (or with several), without a name, or with an MRN that another member of the
Group already carries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final

from psycopg_pool import ConnectionPool

from fhir_export.errors import AuthError, ReadError
from fhir_export.mapping import FHIR_ID_RE
from fhir_export.patients import patient_of
from fhir_export.reads import FhirReader
from ingest.ehr import store
from ingest.errors import IngestError

logger = logging.getLogger(__name__)

PAGE_SIZE: Final = 100
MAX_SKIPPED_LISTED: Final = 1000


class ImportRefused(IngestError):
    """The import cannot run; ``status`` is the HTTP status that says why."""

    def __init__(self, reason: str, status: int) -> None:
        self.reason = reason
        self.status = status
        super().__init__(reason)


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_total: int = 0

    def skip(self, reference: str, reason: str) -> None:
        self.skipped_total += 1
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append({"reference": reference[:200], "reason": reason})


class GroupImport:
    def __init__(
        self,
        pool: ConnectionPool,
        reader: FhirReader,
        *,
        identifier_system: str,
        max_members: int,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._pool = pool
        self._reader = reader
        self._system = identifier_system
        self._max_members = max_members
        self._page_size = page_size

    def run(self, group_id: str, clinic_id: str) -> ImportResult:
        group = self._read_group(group_id)
        members = group.get("member", [])
        if not isinstance(members, list):
            raise ImportRefused("the EHR's Group has a member element that is not a list", 502)
        if len(members) > self._max_members:
            raise ImportRefused(
                f"Group/{group_id} has {len(members)} members; at most {self._max_members}"
                " are imported at once (RPM_FHIR_IMPORT_MAX_MEMBERS)",
                422,
            )
        result = ImportResult()
        ids = self._patient_ids(members, result)
        seen_mrns: set[str] = set()
        detail = f"imported from Group/{group_id}"
        for start in range(0, len(ids), self._page_size):
            page = ids[start : start + self._page_size]
            resources = self._read_patients(page)
            ready: list[store.Imported] = []
            for fhir_id in page:
                reference = f"Patient/{fhir_id}"
                resource = resources.get(fhir_id)
                if resource is None:
                    result.skip(reference, "not found in the EHR")
                    continue
                member = patient_of(resource, self._system)
                if member.mrn is None:
                    result.skip(reference, "no single MRN of the clinic's identifier system")
                elif member.display_name is None:
                    result.skip(reference, "no name")
                elif member.mrn in seen_mrns:
                    result.skip(reference, "another member of the Group carries the same MRN")
                else:
                    seen_mrns.add(member.mrn)
                    ready.append(store.Imported(reference, member.mrn, member.display_name, fhir_id))
            with self._pool.connection() as conn, conn.transaction():
                counts = store.upsert_imported(conn, clinic_id, ready, detail)
            result.created += counts.created
            result.updated += counts.updated
            for reference, reason in counts.conflicts or []:
                result.skip(reference, reason)
        logger.info(
            "imported Group: %d created, %d updated, %d skipped",
            result.created, result.updated, result.skipped_total,
        )  # fmt: skip
        return result

    def _read_group(self, group_id: str) -> dict[str, Any]:
        try:
            return self._reader.read("Group", group_id)
        except ReadError as exc:
            if exc.status in (404, 410):
                raise ImportRefused(f"Group/{group_id} is not in the EHR", 404) from exc
            raise ImportRefused(f"reading the Group from the EHR failed: {exc.reason}", 502) from exc
        except AuthError as exc:
            raise ImportRefused(f"authentication to the EHR failed: {exc.reason}", 502) from exc

    def _patient_ids(self, members: list[Any], result: ImportResult) -> list[str]:
        ids: list[str] = []
        seen: set[str] = set()
        for member in members:
            entity = member.get("entity") if isinstance(member, dict) else None
            reference = entity.get("reference") if isinstance(entity, dict) else None
            if not isinstance(reference, str):
                result.skip("(none)", "the member has no entity reference")
                continue
            kind, _, fhir_id = reference.partition("/")
            if kind != "Patient" or not FHIR_ID_RE.match(fhir_id):
                result.skip(reference, "not a reference to a Patient of this EHR")
            elif isinstance(member, dict) and member.get("inactive") is True:
                result.skip(reference, "inactive in the Group")
            elif fhir_id in seen:
                continue
            else:
                seen.add(fhir_id)
                ids.append(fhir_id)
        return ids

    def _read_patients(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        params = {"_id": ",".join(ids), "_count": str(len(ids))}
        found: dict[str, dict[str, Any]] = {}
        try:
            for page in self._reader.search("Patient", params):
                for resource in page.resources:
                    fhir_id = resource.get("id")
                    if isinstance(fhir_id, str) and fhir_id in ids:
                        found[fhir_id] = resource
        except ReadError as exc:
            raise ImportRefused(
                f"reading the Group's Patients from the EHR failed: {exc.reason}", 502
            ) from exc
        except AuthError as exc:
            raise ImportRefused(f"authentication to the EHR failed: {exc.reason}", 502) from exc
        return found
