"""Reading from the EHR: one GET at a time, searches that follow ``next`` links, all bounded.

The EHR is a peer we do not control: an answer may be an error page, truncated, huge, or a
Bundle of something else. Every answer is read up to ``max_bytes`` and must be a JSON object of
the expected ``resourceType``; anything else is a :class:`ReadError` naming what was wrong.
``next`` links are followed only while they stay under the configured base URL (a link to
another host would carry our access token there) and only up to ``max_pages`` pages.
Authentication is the export's (:mod:`fhir_export.auth`): a 401 fetches a new token once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from fhir_export.auth import Auth
from fhir_export.client import FHIR_JSON
from fhir_export.errors import AuthError, ReadError

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES: Final = 16 * 1024 * 1024
DEFAULT_MAX_PAGES: Final = 200


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of a search: the matched resources and the total the server claims, if any."""

    resources: list[dict[str, Any]]
    total: int | None
    next_url: str | None


class FhirReader:
    """GETs under one FHIR base URL, with the export's authentication."""

    def __init__(
        self,
        http: httpx.Client,
        base_url: str,
        auth: Auth,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._auth = auth
        self._max_bytes = max_bytes
        self._max_pages = max_pages
        self.requests_sent = 0

    @property
    def base_url(self) -> str:
        return self._base_url

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """``GET [base]/<type>/<id>``; :class:`ReadError` (status 404) when it does not exist."""
        resource = self._get(f"{self._base_url}/{resource_type}/{resource_id}", None)
        if resource.get("resourceType") != resource_type:
            raise ReadError(f"the EHR answered a {_kind(resource)} for {resource_type}/{resource_id}")
        return resource

    def search_page(self, resource_type: str, params: Mapping[str, str]) -> SearchPage:
        """The first page of ``GET [base]/<type>?<params>``."""
        return self._page(f"{self._base_url}/{resource_type}", params, resource_type)

    def search(self, resource_type: str, params: Mapping[str, str]) -> Iterator[SearchPage]:
        """Every page of a search, following ``next`` links (bounded by ``max_pages``)."""
        page = self.search_page(resource_type, params)
        yield page
        pages = 1
        while page.next_url is not None:
            if pages >= self._max_pages:
                raise ReadError(f"the search has more than {self._max_pages} pages")
            page = self._page(page.next_url, None, resource_type)
            pages += 1
            yield page

    # ------------------------------------------------------------------ internals

    def _page(self, url: str, params: Mapping[str, str] | None, resource_type: str) -> SearchPage:
        bundle = self._get(url, params)
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "searchset":
            raise ReadError(f"the EHR answered a {_kind(bundle)} to a {resource_type} search")
        entries = bundle.get("entry", [])
        if not isinstance(entries, list):
            raise ReadError("the search Bundle's entry is not a list")
        resources: list[dict[str, Any]] = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise ReadError("a search Bundle entry is not an object")
            search = entry.get("search")
            mode = search.get("mode", "match") if isinstance(search, dict) else "match"
            resource = entry.get("resource")
            if mode != "match":
                continue  # included resources and OperationOutcomes are not matches
            if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
                raise ReadError(f"a {resource_type} search matched a {_kind(resource)}")
            resources.append(resource)
        total = bundle.get("total")
        return SearchPage(
            resources=resources,
            total=total if isinstance(total, int) and not isinstance(total, bool) else None,
            next_url=self._next_link(bundle),
        )

    def _next_link(self, bundle: Mapping[str, Any]) -> str | None:
        links = bundle.get("link", [])
        if not isinstance(links, list):
            return None
        for link in links:
            if isinstance(link, dict) and link.get("relation") == "next":
                url = link.get("url")
                if not isinstance(url, str) or not url:
                    raise ReadError("the search Bundle's next link has no url")
                if not (url.startswith(self._base_url + "/") or url.startswith(self._base_url + "?")):
                    raise ReadError("the search Bundle's next link leaves the EHR's base URL")
                return url
        return None

    def _get(self, url: str, params: Mapping[str, str] | None) -> dict[str, Any]:
        status, body = self._send(url, params)
        if status == 401 and self._auth.invalidate():
            logger.info("EHR refused the access token; fetching a new one")
            status, body = self._send(url, params)
        if status in (401, 403):
            raise AuthError(f"EHR answered HTTP {status} to an authenticated read", transient=False)
        if status == 404 or status == 410:
            raise ReadError(f"the EHR answered HTTP {status} (not found)", status=status)
        if status == 429 or status >= 500:
            raise ReadError(f"the EHR answered HTTP {status}", status=status, transient=True)
        if not 200 <= status < 300:
            raise ReadError(f"the EHR answered HTTP {status}", status=status)
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ReadError(f"the EHR's answer is not JSON ({len(body)} bytes)", status=status) from None
        if not isinstance(parsed, dict):
            raise ReadError("the EHR's answer is not a JSON object", status=status)
        return parsed

    def _send(self, url: str, params: Mapping[str, str] | None) -> tuple[int, bytes]:
        headers = {"Accept": FHIR_JSON, **self._auth.headers()}
        self.requests_sent += 1
        try:
            with self._http.stream("GET", url, params=params, headers=headers) as answer:
                chunks: list[bytes] = []
                size = 0
                for chunk in answer.iter_bytes():
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise ReadError(f"the EHR's answer is larger than {self._max_bytes} bytes")
                    chunks.append(chunk)
                return answer.status_code, b"".join(chunks)
        except httpx.TimeoutException as exc:
            raise ReadError(f"EHR timed out ({type(exc).__name__})", transient=True) from exc
        except httpx.HTTPError as exc:
            raise ReadError(f"EHR unreachable ({type(exc).__name__})", transient=True) from exc


def _kind(value: object) -> str:
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return str(value["resourceType"])[:64]
    return type(value).__name__


__all__ = ["FhirReader", "SearchPage"]
