"""The EHR's discovery documents: SMART configuration, OpenID configuration, JWKS.

``parse_*`` are pure checks of a fetched document. :class:`Discovery` fetches them (bounded in
size and time, no redirects followed) and keeps each for a few minutes, so a burst of launches
does not become a burst of requests to the EHR. Only issuers of the allow-list ever reach it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx

from ingest.smart.errors import EhrUnavailable

logger = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES: Final = 512 * 1024
CACHE_TTL_S: Final = 300.0
SMART_CONFIGURATION: Final = "/.well-known/smart-configuration"
OPENID_CONFIGURATION: Final = "/.well-known/openid-configuration"


@dataclass(frozen=True, slots=True)
class SmartConfiguration:
    authorization_endpoint: str
    token_endpoint: str
    #: The OpenID issuer the EHR announces (``issuer``); the FHIR base when it announces none.
    issuer: str


@dataclass(frozen=True, slots=True)
class OpenIdConfiguration:
    issuer: str
    jwks_uri: str


def _url(doc: dict[str, Any], name: str, where: str, *, https: bool) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value.startswith(("http://", "https://")) or len(value) > 2000:
        raise EhrUnavailable(f"the {where} has no usable {name}")
    if https and not value.startswith("https://"):
        raise EhrUnavailable(f"the {where} names an {name} without TLS")
    return value


def parse_smart_configuration(doc: object, iss: str) -> SmartConfiguration:
    """Check ``{iss}/.well-known/smart-configuration``: the two endpoints (https when ``iss`` is),
    PKCE ``S256`` among the challenge methods when it lists them."""
    where = "EHR's SMART configuration"
    if not isinstance(doc, dict):
        raise EhrUnavailable(f"the {where} is not a JSON object")
    https = iss.startswith("https://")
    methods = doc.get("code_challenge_methods_supported")
    if methods is not None and (not isinstance(methods, list) or "S256" not in methods):
        raise EhrUnavailable(f"the {where} does not offer PKCE with S256")
    issuer = doc.get("issuer")
    return SmartConfiguration(
        authorization_endpoint=_url(doc, "authorization_endpoint", where, https=https),
        token_endpoint=_url(doc, "token_endpoint", where, https=https),
        issuer=_url(doc, "issuer", where, https=https) if issuer is not None else iss,
    )


def parse_openid_configuration(doc: object, issuer: str) -> OpenIdConfiguration:
    """Check ``{issuer}/.well-known/openid-configuration``: it names that same issuer (OpenID
    Connect Discovery §4.3) and a ``jwks_uri``."""
    where = "EHR's OpenID configuration"
    if not isinstance(doc, dict):
        raise EhrUnavailable(f"the {where} is not a JSON object")
    named = doc.get("issuer")
    if not isinstance(named, str) or named.rstrip("/") != issuer.rstrip("/"):
        raise EhrUnavailable(f"the {where} names another issuer than the one it was read from")
    return OpenIdConfiguration(
        issuer=named, jwks_uri=_url(doc, "jwks_uri", where, https=issuer.startswith("https://"))
    )


class Discovery:
    """Fetches and caches the EHR's documents; thread-safe."""

    def __init__(
        self, *, timeout_s: float, ttl_s: float = CACHE_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._timeout_s = timeout_s
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def smart_configuration(self, iss: str) -> SmartConfiguration:
        return parse_smart_configuration(self._document(iss.rstrip("/") + SMART_CONFIGURATION), iss)

    def openid_configuration(self, issuer: str) -> OpenIdConfiguration:
        doc = self._document(issuer.rstrip("/") + OPENID_CONFIGURATION)
        return parse_openid_configuration(doc, issuer)

    def jwks(self, uri: str, *, fresh: bool = False) -> dict[str, Any]:
        """The key set; ``fresh`` reads it again (an id token signed by a key not seen yet may
        follow a key rotation at the EHR)."""
        doc = self._document(uri, fresh=fresh)
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise EhrUnavailable("the EHR's JWKS is not a key set")
        return doc

    def _document(self, url: str, *, fresh: bool = False) -> object:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None and cached[0] > now and not fresh:
            return cached[1]
        doc = self._fetch(url)
        with self._lock:
            self._cache[url] = (now + self._ttl_s, doc)
        return doc

    def _fetch(self, url: str) -> object:
        logger.debug("reading %s", url)
        try:
            with (
                httpx.Client(timeout=self._timeout_s, follow_redirects=False) as client,
                client.stream("GET", url, headers={"Accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    raise EhrUnavailable(f"the EHR answered {response.status_code} for {_path(url)}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_DOCUMENT_BYTES:
                        limit = MAX_DOCUMENT_BYTES
                        raise EhrUnavailable(f"the EHR's {_path(url)} is larger than {limit} bytes")
        except httpx.HTTPError as exc:
            raise EhrUnavailable(f"the EHR cannot be reached ({type(exc).__name__})") from None
        try:
            return json.loads(bytes(body))
        except (ValueError, UnicodeDecodeError):
            raise EhrUnavailable(f"the EHR's {_path(url)} is not JSON") from None


def _path(url: str) -> str:
    return httpx.URL(url).path[-100:] or "/"
