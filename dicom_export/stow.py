"""STOW-RS (DICOM PS3.18 10.5): the only code that sends DICOM objects to the PACS.

One instance per request, so the answer is about that instance alone and a retry repeats exactly
one object (its UIDs are derived from the strip, so the PACS files it once). The answer becomes
an outcome or an error that says what to do next:

- 200 (or 202 with the instance referenced): stored; ``created`` is False when the PACS says it
  had the instance already (409, or failure reason 0x0111 "duplicate SOP instance").
- 400, 413, or a failure reason the content caused (:mod:`dicom_export.status`): :class:`RefusedByPacs`.
- no answer, a timeout, 408, 429, 5xx, a failure reason worth a retry (0xA7xx "out of resources",
  0x0110 "processing failure"; :mod:`dicom_export.status`), and
  the answers a wrong or unauthorised URL gives (401, 403, 404, 405, 415): :class:`PacsUnavailable`,
  which leaves the row for later; the reason names the answer so an operator can fix the URL.
"""

from __future__ import annotations

import email.utils
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

import httpx

from dicom_export.errors import PacsUnavailable, RefusedByPacs
from dicom_export.models import DicomObject
from dicom_export.status import raise_for, stored_before

DICOM_JSON: Final = "application/dicom+json"
MAX_RETRY_AFTER_S: Final = 3600.0
MAX_REASON_CHARS: Final = 500
MAX_ANSWER_BYTES: Final = 1024 * 1024  # a STOW-RS answer about one instance is a few hundred bytes
_FAILED_SOP_SEQUENCE: Final = "00081198"
_REFERENCED_SOP_SEQUENCE: Final = "00081199"
_REFERENCED_SOP_INSTANCE_UID: Final = "00081155"
_FAILURE_REASON: Final = "00081197"
_WARNING_REASON: Final = "00081196"
_RETRY_LATER: Final = frozenset({401, 403, 404, 405, 408, 415, 429})


@dataclass(frozen=True, slots=True)
class Stored:
    """The PACS holds the instance; ``created`` is False when it had it before (a retry)."""

    sop_instance_uid: str
    created: bool
    warning: int | None = None


class StowClient:
    """Stores DICOM objects under one DICOMweb base URL (``<base>/studies``)."""

    def __init__(self, http: httpx.Client, base_url: str) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")

    def store(self, obj: DicomObject) -> Stored:
        boundary = uuid.uuid4().hex
        body = b"".join(
            (
                f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii"),
                obj.data,
                f"\r\n--{boundary}--\r\n".encode("ascii"),
            )
        )
        headers = {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": DICOM_JSON,
        }
        try:
            with self._http.stream(
                "POST", f"{self.base_url}/studies", content=body, headers=headers
            ) as response:
                answer = _read_bounded(response)
        except httpx.TimeoutException as exc:
            raise PacsUnavailable(f"PACS did not answer in time ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            reason = f"PACS unreachable: {type(exc).__name__}: {exc}"
            raise PacsUnavailable(reason[:MAX_REASON_CHARS]) from exc
        return interpret(response.status_code, answer, response.headers, obj.sop_instance_uid)


def interpret(status: int, content: bytes, headers: httpx.Headers, sop_instance_uid: str) -> Stored:
    """A STOW-RS answer about one instance as :class:`Stored`, or the error saying what next."""
    answer = _json(content)
    failure = _reason(answer, _FAILED_SOP_SEQUENCE, _FAILURE_REASON, sop_instance_uid)
    warning = _reason(answer, _REFERENCED_SOP_SEQUENCE, _WARNING_REASON, sop_instance_uid)
    if status == 409 or (failure is not None and stored_before(failure)):
        return Stored(sop_instance_uid, created=False, warning=warning)
    if status >= 500 or status in _RETRY_LATER:
        raise PacsUnavailable(
            f"PACS answered HTTP {status}: {_text(content)}",
            status=status,
            retry_after=parse_retry_after(headers.get("Retry-After"), time.time()),
        )
    if failure is not None:
        raise_for(failure, status=status)
    if 200 <= status < 300:
        return Stored(sop_instance_uid, created=True, warning=warning)
    raise RefusedByPacs(f"PACS refused the instance: {_text(content)}", status=status)


def _read_bounded(response: httpx.Response) -> bytes:
    """The answer's body, at most :data:`MAX_ANSWER_BYTES` of it: a PACS answering without end
    costs a bounded amount of memory (the truncated JSON is then unreadable, and the status
    decides)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_ANSWER_BYTES:
            break
    return b"".join(chunks)[:MAX_ANSWER_BYTES]


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return min(max(0.0, moment.timestamp() - now), MAX_RETRY_AFTER_S)


def _json(content: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(content) if content else None
    except ValueError:
        return {}
    if isinstance(answer, list) and answer and isinstance(answer[0], dict):
        answer = answer[0]
    return answer if isinstance(answer, dict) else {}


def _reason(answer: dict[str, Any], sequence: str, reason_tag: str, sop_instance_uid: str) -> int | None:
    """The failure or warning reason the answer gives for this instance (or for its one item)."""
    items = _values(answer.get(sequence))
    for item in items:
        if not isinstance(item, dict):
            continue
        uids = _values(item.get(_REFERENCED_SOP_INSTANCE_UID))
        if uids and sop_instance_uid not in uids:
            continue
        reasons = _values(item.get(reason_tag))
        if reasons and isinstance(reasons[0], int) and not isinstance(reasons[0], bool):
            return reasons[0]
        if sequence == _FAILED_SOP_SEQUENCE:
            return 0xC000  # failed without a reason: cannot be understood
    return None


def _values(element: object) -> list[Any]:
    if isinstance(element, dict):
        value = element.get("Value")
        if isinstance(value, list):
            return value
    return []


def _text(content: bytes) -> str:
    text = content.decode("utf-8", "replace").strip()
    return " ".join(text.split())[:MAX_REASON_CHARS] or "(no body)"
