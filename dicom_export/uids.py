"""Derived DICOM UIDs: the same strip always gets the same UIDs, so a retried STOW stores nothing twice.

A UUID becomes a UID under the ``2.25`` root (ITU-T X.667, DICOM PS3.5 B.2): ``2.25.`` followed by
the UUID as one unsigned decimal integer (at most 39 digits, so at most 44 characters, below the
64 a UI value may hold). The UUIDs are version 5 (SHA-1 of a name in our own namespace), so no
registry, counter or random source is involved.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Final

NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:rpm-ingest:dicom")


def uid_from_name(name: str) -> str:
    """``2.25.<int>`` of the version 5 UUID of ``name`` in the service's DICOM namespace."""
    return f"2.25.{uuid.uuid5(NAMESPACE, name).int}"


def sop_instance_uid(strip_id: str) -> str:
    return uid_from_name(f"ecg-strip/{strip_id}/instance")


def series_instance_uid(strip_id: str) -> str:
    return uid_from_name(f"ecg-strip/{strip_id}/series")


def study_instance_uid(clinic_id: str, patient_id: str, local_day: date) -> str:
    """One study per patient and clinic-local day: that day's strips are found together."""
    return uid_from_name(f"ecg-study/{clinic_id}/{patient_id}/{local_day.isoformat()}")
