"""DIMSE C-STORE (PS3.7 9.1.1) with pynetdicom: the DICOM export for a PACS that offers no DICOMweb.

One association per instance (associate, C-STORE, release), so each answer is about that strip
alone and nothing is held open between rounds. The object travels as it was built (Explicit VR
Little Endian, Implicit VR offered as well). What the status means is :mod:`dicom_export.status`'s;
an association that is rejected, aborted or never connects, and a C-STORE with no answer, are
:class:`PacsUnavailable` (the row waits: a wrong AE title or address is fixed in the settings).
"""

from __future__ import annotations

from io import BytesIO
from typing import Final

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from dicom_export.address import AeAddress, check_ae_title
from dicom_export.errors import PacsUnavailable
from dicom_export.models import DicomObject
from dicom_export.status import raise_for, stored_before
from dicom_export.stow import Stored

DEFAULT_CALLING_AE: Final = "RPMINGEST"


class CStoreClient:
    """Stores DICOM objects in one Storage SCP with C-STORE, an association per instance."""

    def __init__(
        self, address: AeAddress, *, calling_ae: str = DEFAULT_CALLING_AE, timeout_s: float = 30.0
    ) -> None:
        self.address = address
        self.calling_ae = check_ae_title(calling_ae)
        self.timeout_s = timeout_s

    def store(self, obj: DicomObject) -> Stored:
        ae = AE(ae_title=self.calling_ae)
        ae.connection_timeout = self.timeout_s
        ae.acse_timeout = self.timeout_s
        ae.dimse_timeout = self.timeout_s
        ae.network_timeout = self.timeout_s
        ae.add_requested_context(obj.sop_class_uid, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        peer = self.address
        assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title)
        if not assoc.is_established:
            how = "rejected" if assoc.is_rejected else "aborted" if assoc.is_aborted else "not connected"
            raise PacsUnavailable(f"association with {peer} {how}")
        try:
            answer = assoc.send_c_store(dcmread(BytesIO(obj.data)))
        finally:
            if assoc.is_established:
                assoc.release()
        code = answer.get("Status") if answer else None
        if not isinstance(code, int):
            raise PacsUnavailable(f"no C-STORE answer from {peer} (timeout or abort)")
        before = stored_before(code)
        if before is None:
            raise_for(code)
        warning = code if code & 0xF000 == 0xB000 else None
        return Stored(obj.sop_instance_uid, created=not before, warning=warning)
