"""Authentication to the EHR: none, a static bearer token, or SMART Backend Services.

SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html): the
client signs a short-lived JWT (``private_key_jwt``, RS384 or ES384) and exchanges it at the
token endpoint for an access token (client credentials grant). The token endpoint comes from
``<base>/.well-known/smart-configuration`` unless configured; the access token is cached until
shortly before it expires. The EHR registers the client with the JWKS from :meth:`SigningKey.jwks`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from fhir_export.errors import AuthError

logger = logging.getLogger(__name__)

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_S: Final = 300  # SMART: no more than five minutes
DEFAULT_SCOPE: Final = (
    "system/Observation.read system/Observation.write system/Device.read system/Device.write"
    " system/Flag.read system/Flag.write"
)
# Patients from the EHR (look-up by MRN, Group import): read-only.
PATIENT_READ_SCOPE: Final = "system/Patient.read system/Group.read"
MIN_RSA_BITS: Final = 2048


class Auth(Protocol):
    """Supplies the Authorization header of EHR requests."""

    def headers(self) -> Mapping[str, str]:
        """Headers to add; may fetch a token (raises :class:`AuthError`)."""
        ...

    def invalidate(self) -> bool:
        """Forget a cached token after a 401; True when a fresh one may help."""
        ...


class NoAuth:
    def headers(self) -> Mapping[str, str]:
        return {}

    def invalidate(self) -> bool:
        return False


class BearerAuth:
    """A static token issued by the EHR's administrators."""

    def __init__(self, token: str) -> None:
        if not token or any(c.isspace() for c in token):
            raise AuthError("the bearer token is empty or contains whitespace", transient=False)
        self._header = {"Authorization": f"Bearer {token}"}

    def headers(self) -> Mapping[str, str]:
        return self._header

    def invalidate(self) -> bool:
        return False


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class SigningKey:
    """The client's private key: signs assertions and publishes its public half as a JWKS."""

    def __init__(self, private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
        if isinstance(private_key, rsa.RSAPrivateKey):
            if private_key.key_size < MIN_RSA_BITS:
                raise AuthError(f"RSA key must have at least {MIN_RSA_BITS} bits", transient=False)
            self.algorithm = "RS384"
        elif isinstance(private_key, ec.EllipticCurvePrivateKey):
            if not isinstance(private_key.curve, ec.SECP384R1):
                raise AuthError("ES384 needs an EC key on curve P-384", transient=False)
            self.algorithm = "ES384"
        else:  # pragma: no cover - guarded by the type
            raise AuthError("key must be RSA or EC P-384", transient=False)
        self._private = private_key
        self.kid = self._thumbprint()

    @classmethod
    def from_pem(cls, data: bytes, password: bytes | None = None) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError) as exc:
            raise AuthError(f"cannot read the private key: {exc}", transient=False) from exc
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise AuthError("private key must be RSA or EC P-384", transient=False)
        return cls(key)

    @classmethod
    def from_file(cls, path: Path) -> SigningKey:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise AuthError(f"cannot read the private key file: {exc}", transient=False) from exc
        return cls.from_pem(data)

    @classmethod
    def generate(cls, algorithm: str = "RS384") -> SigningKey:
        if algorithm == "RS384":
            return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        if algorithm == "ES384":
            return cls(ec.generate_private_key(ec.SECP384R1()))
        raise AuthError(f"unsupported algorithm {algorithm!r}", transient=False)

    def private_pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def _public_members(self) -> dict[str, str]:
        public = self._private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            return {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
        assert isinstance(public, ec.EllipticCurvePublicKey)
        point = public.public_numbers()
        size = 48  # P-384 coordinates are 48 bytes
        return {
            "crv": "P-384",
            "kty": "EC",
            "x": base64.urlsafe_b64encode(point.x.to_bytes(size, "big")).rstrip(b"=").decode(),
            "y": base64.urlsafe_b64encode(point.y.to_bytes(size, "big")).rstrip(b"=").decode(),
        }

    def _thumbprint(self) -> str:
        """RFC 7638 JWK thumbprint (SHA-256), used as the key id."""
        canonical = json.dumps(self._public_members(), separators=(",", ":"), sort_keys=True)
        digest = hashlib.sha256(canonical.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def public_jwk(self) -> dict[str, Any]:
        public = self._private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk: dict[str, Any] = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            assert isinstance(public, ec.EllipticCurvePublicKey)
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig", "key_ops": ["verify"]})
        return jwk

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(
            dict(claims),
            self._private,
            algorithm=self.algorithm,
            headers={"kid": self.kid, "typ": "JWT"},
        )


class SmartBackendAuth:
    """Client credentials grant with a ``private_key_jwt`` assertion; caches the token."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str,
        client_id: str,
        key: SigningKey,
        token_url: str | None = None,
        scope: str = DEFAULT_SCOPE,
        refresh_margin_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not client_id:
            raise AuthError("SMART backend auth needs a client id", transient=False)
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._key = key
        self._token_url = token_url
        self._scope = scope
        self._margin = refresh_margin_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._valid_until = 0.0
        self.tokens_fetched = 0

    def headers(self) -> Mapping[str, str]:
        with self._lock:
            if self._token is None or self._clock() >= self._valid_until:
                self._fetch()
            assert self._token is not None
            return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> bool:
        with self._lock:
            self._token = None
            self._valid_until = 0.0
        return True

    def token_endpoint(self) -> str:
        if self._token_url is None:
            self._token_url = self._discover()
        return self._token_url

    def _discover(self) -> str:
        url = f"{self._base_url}/.well-known/smart-configuration"
        try:
            answer = self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise AuthError(f"SMART discovery failed: {type(exc).__name__}", transient=True) from exc
        if answer.status_code != 200:
            raise AuthError(
                f"SMART discovery answered HTTP {answer.status_code}",
                transient=answer.status_code >= 500 or answer.status_code == 429,
            )
        try:
            endpoint = answer.json().get("token_endpoint")
        except (ValueError, AttributeError) as exc:
            raise AuthError("SMART configuration is not a JSON object", transient=True) from exc
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise AuthError("SMART configuration has no usable token_endpoint", transient=False)
        logger.info("discovered the SMART token endpoint")
        return endpoint

    def _fetch(self) -> None:
        endpoint = self.token_endpoint()
        now = self._clock()
        wall = int(time.time())  # the assertion's times are checked by the token server's clock
        assertion = self._key.sign(
            {
                "iss": self._client_id,
                "sub": self._client_id,
                "aud": endpoint,
                "exp": wall + ASSERTION_LIFETIME_S,
                "iat": wall,
                "jti": secrets.token_urlsafe(24),
            }
        )
        form = {
            "grant_type": "client_credentials",
            "scope": self._scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        try:
            answer = self._http.post(endpoint, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise AuthError(f"token request failed: {type(exc).__name__}", transient=True) from exc
        body = _json_or_none(answer)
        if answer.status_code != 200:
            detail = ""
            if isinstance(body, dict):
                detail = f": {body.get('error', '')} {body.get('error_description', '')}".rstrip()
            raise AuthError(
                f"token endpoint answered HTTP {answer.status_code}{detail}",
                transient=answer.status_code >= 500 or answer.status_code == 429,
            )
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise AuthError("token answer has no access_token", transient=True)
        expires_in = body.get("expires_in", 300)
        if not isinstance(expires_in, int | float) or expires_in <= 0:
            expires_in = 300
        margin = min(self._margin, expires_in / 5)
        self._token = body["access_token"]
        self._valid_until = now + float(expires_in) - margin
        self.tokens_fetched += 1
        logger.info("obtained an EHR access token valid for %ss", expires_in)


def _json_or_none(answer: httpx.Response) -> object:
    try:
        return answer.json()
    except ValueError:
        return None
