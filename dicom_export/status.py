"""What a PACS's status code for one instance means, for STOW-RS (Failure/Warning Reason) and C-STORE
(Status) alike: DICOM PS3.4 Annex B.2.3 (Storage Service statuses) and PS3.7 Annex C.

- success 0x0000 and the warnings 0xB000 (coercion), 0xB006 (elements discarded), 0xB007 (data set
  does not match the SOP Class) → stored;
- 0x0111 (duplicate SOP Instance) → stored before (a retry of ours: the UIDs are derived);
- 0xA7xx (out of resources), 0x0110 (processing failure), 0x0124 (not authorised), 0x0210/0x0211
  (duplicate invocation, unrecognised operation) → try again later;
- anything else (0xA9xx and 0x0117: does not match / invalid instance, 0xCxxx cannot understand,
  0x0122 SOP Class not supported, ...) → refused for its content.
"""

from __future__ import annotations

from typing import Final, NoReturn

from dicom_export.errors import PacsUnavailable, RefusedByPacs

SUCCESS: Final = 0x0000
DUPLICATE: Final = 0x0111
WARNINGS: Final = frozenset({0xB000, 0xB006, 0xB007})
RETRY_LATER: Final = frozenset({0x0110, 0x0124, 0x0210, 0x0211})


def stored_before(code: int) -> bool | None:
    """True: the PACS had the instance; False: stored now; None: not stored (see :func:`raise_for`)."""
    if code == DUPLICATE:
        return True
    if code == SUCCESS or code in WARNINGS:
        return False
    return None


def raise_for(code: int, *, status: int | None = None) -> NoReturn:
    """Raise the error that says what to do with an instance the PACS did not store."""
    if code >> 8 == 0xA7 or code in RETRY_LATER:
        raise PacsUnavailable(f"PACS could not store it now (status 0x{code:04X})", status=status)
    raise RefusedByPacs(f"PACS refused the instance (status 0x{code:04X})", status=status)
