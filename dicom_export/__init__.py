"""DICOM export: ECG strips become DICOM ECG waveform objects stored in a PACS with STOW-RS.

Building (:mod:`dicom_export.waveform`, with :mod:`~dicom_export.leads` and
:mod:`~dicom_export.uids`) is pure: a strip, its patient and clinic in, a Part 10 file out, the
same bytes every time. :mod:`dicom_export.stow` is the only code that talks to the PACS. The
delivery loop over the outbox lives with the service (``ingest.dicom``). Depends on ``devices``
only.
"""

from dicom_export.errors import DicomExportError, PacsUnavailable, RefusedByPacs, UnsupportedStrip
from dicom_export.models import ClinicRef, DicomObject, PatientRef
from dicom_export.waveform import GENERAL_ECG, TWELVE_LEAD_ECG, build_dataset, build_object

__all__ = [
    "GENERAL_ECG",
    "TWELVE_LEAD_ECG",
    "ClinicRef",
    "DicomExportError",
    "DicomObject",
    "PacsUnavailable",
    "PatientRef",
    "RefusedByPacs",
    "UnsupportedStrip",
    "build_dataset",
    "build_object",
]
