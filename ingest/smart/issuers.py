"""The issuers allowed to launch the dashboard (``RPM_SMART_ISSUERS``), each mapped to a clinic.

Pure: text in, a mapping out, or :class:`IssuerConfigError` naming the bad entry. The map is the
allow-list that keeps ``/smart/launch`` from being an open redirect or a request forger: an
``iss`` not in it is refused before anything is fetched from it or redirected to it.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

CLINIC_ID_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_URL_LENGTH: Final = 500
ENTRY_HINT: Final = "each entry is <FHIR base URL>=<clinic id>, e.g. https://ehr.example/fhir=north"


class IssuerConfigError(ValueError):
    """``RPM_SMART_ISSUERS`` cannot be used; the message names the entry and what is wrong."""


def normalise_issuer(url: str) -> str | None:
    """The comparable form of an issuer URL (scheme and host lower case, no trailing slash), or
    None when ``url`` is not an absolute http(s) URL without credentials, query or fragment."""
    if not url or len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 0x20 for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        return None
    if "?" in url or "#" in url:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


def parse_issuers(text: str) -> dict[str, str]:
    """``https://a.example/fhir=north,https://b.example/R4=south`` → {normalised URL: clinic id}.

    Blank text is an empty map (SMART launch off). An empty entry, a missing ``=``, a URL that is
    not an absolute http(s) URL (or carries credentials, a query or a fragment), a clinic id
    outside ``[A-Za-z0-9._-]{1,64}`` or the same issuer twice is an error.
    """
    if not text.strip():
        return {}
    issuers: dict[str, str] = {}
    for position, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        if not entry:
            raise IssuerConfigError(f"entry {position} is empty ({ENTRY_HINT})")
        url, sep, clinic = entry.rpartition("=")
        url, clinic = url.strip(), clinic.strip()
        if not sep or not url:
            raise IssuerConfigError(f"entry {position} {entry[:100]!r} has no '=<clinic id>' ({ENTRY_HINT})")
        normalised = normalise_issuer(url)
        if normalised is None:
            raise IssuerConfigError(
                f"entry {position}: {url[:100]!r} is not an absolute http(s) URL without credentials,"
                " query or fragment"
            )
        if not CLINIC_ID_RE.match(clinic):
            raise IssuerConfigError(
                f"entry {position}: clinic id {clinic[:100]!r} must match [A-Za-z0-9._-]{{1,64}}"
            )
        if normalised in issuers:
            raise IssuerConfigError(f"entry {position}: issuer {url[:100]!r} is listed twice")
        issuers[normalised] = clinic
    return issuers


def clinic_of(issuers: dict[str, str], iss: str) -> str | None:
    """The clinic an ``iss`` from a launch request belongs to, or None when it is not allowed."""
    normalised = normalise_issuer(iss)
    return None if normalised is None else issuers.get(normalised)
