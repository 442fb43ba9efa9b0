"""Transaction Bundles with conditional create, and reading the server's answers.

Every entry is ``POST`` with ``ifNoneExist: identifier=<system>|<value>``: a retried bundle
finds what an earlier attempt stored instead of storing it again. Device entries come first
and Observations refer to them by their ``urn:uuid`` fullUrl, which the server resolves to the
Device it created or found.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from fhir_export.errors import PermanentDeliveryError, TransientDeliveryError
from fhir_export.models import Identifier

_ENTRY_RE: Final = re.compile(r"Bundle\.entry\[(\d+)\]")
_STATUS_RE: Final = re.compile(r"^\s*(\d{3})(?:\s|$)")
MAX_REASON: Final = 1000


@dataclass(frozen=True, slots=True)
class BundleEntry:
    """One resource to create unless a resource with ``identifier`` already exists."""

    full_url: str
    identifier: Identifier
    resource: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "fullUrl": self.full_url,
            "resource": self.resource,
            "request": {
                "method": "POST",
                "url": self.resource["resourceType"],
                "ifNoneExist": if_none_exist(self.identifier),
            },
        }


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    """The server's answer for one entry of a transaction."""

    index: int
    status: int
    location: str | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def created(self) -> bool:
        """201: stored now; 200: the conditional create found the resource already there."""
        return self.status == 201

    @property
    def reference(self) -> str | None:
        """``Type/id`` from the location (without ``_history``), when the server sent one."""
        if not self.location:
            return None
        parts = self.location.split("?")[0].rstrip("/").split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) < 2:
            return None
        return f"{parts[-2]}/{parts[-1]}"


def if_none_exist(identifier: Identifier) -> str:
    """The conditional create's search, as an URL query: ``identifier=<system>|<value>``."""
    return urlencode({"identifier": f"{identifier.system}|{identifier.value}"})


def transaction(entries: Sequence[BundleEntry]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [entry.as_json() for entry in entries],
    }


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def outcome_reason(body: object) -> tuple[str, dict[int, list[str]]]:
    """Summarise an OperationOutcome: one readable reason, and the issues per bundle entry."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return "no OperationOutcome in the answer", {}
    issues = body.get("issue")
    reasons: list[str] = []
    per_entry: dict[int, list[str]] = {}
    for issue in issues if isinstance(issues, list) else []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details")
        text = (
            (_text(details.get("text")) if isinstance(details, dict) else None)
            or _text(issue.get("diagnostics"))
            or _text(issue.get("code"))
            or "unspecified issue"
        )
        paths = [p for key in ("expression", "location") for p in _strings(issue.get(key))]
        where = f" at {paths[0]}" if paths else ""
        reasons.append(f"{text}{where}")
        for path in paths:
            match = _ENTRY_RE.search(path)
            if match:
                per_entry.setdefault(int(match.group(1)), []).append(text)
    reason = "; ".join(reasons) or "OperationOutcome without issues"
    return reason[:MAX_REASON], per_entry


def _strings(value: object) -> list[str]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def parse_transaction_response(body: object, expected: int) -> list[EntryOutcome]:
    """Per-entry outcomes of a ``transaction-response`` (entries are in request order).

    An answer that is not a response bundle with one entry per request is a protocol failure:
    the server may or may not have stored the bundle, so it is transient (a retry is safe).
    """
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise TransientDeliveryError("answer to a transaction is not a Bundle")
    if body.get("type") not in ("transaction-response", "batch-response"):
        raise TransientDeliveryError(f"answer is a Bundle of type {body.get('type')!r}")
    entries = body.get("entry")
    if not isinstance(entries, list) or len(entries) != expected:
        count = len(entries) if isinstance(entries, list) else 0
        raise TransientDeliveryError(f"answer has {count} entries for {expected} requests")
    outcomes = []
    for index, entry in enumerate(entries):
        response = entry.get("response") if isinstance(entry, dict) else None
        if not isinstance(response, dict):
            raise TransientDeliveryError(f"answer entry {index} has no response")
        match = _STATUS_RE.match(str(response.get("status", "")))
        if match is None:
            raise TransientDeliveryError(f"answer entry {index} has no HTTP status")
        status = int(match.group(1))
        reason = None
        if not 200 <= status < 300:
            reason, _ = outcome_reason(response.get("outcome"))
        outcomes.append(EntryOutcome(index, status, _text(response.get("location")), reason))
    return outcomes


def raise_for_outcome(status: int, body: object, retry_after: float | None) -> None:
    """Turn a failed transaction answer into the error that says what to do next."""
    reason, per_entry = outcome_reason(body)
    if status in (408, 409, 425, 429) or status >= 500:
        raise TransientDeliveryError(reason, status=status, retry_after=retry_after)
    raise PermanentDeliveryError(reason, status=status, entry_issues=per_entry)
