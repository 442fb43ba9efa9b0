"""The three auth modes against the local FHIR server, which verifies SMART assertions
against the registered JWKS."""

from __future__ import annotations

import random
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_export.auth import Auth, BearerAuth, NoAuth, SigningKey, SmartBackendAuth
from fhir_export.client import FhirClient, build_http_client
from fhir_export.errors import AuthError
from fhir_export.mapping import ObservationMapper
from fhir_export.worker import ExportWorker
from tests.fhir_export.test_delivery import FAST, drain
from tests.support.fhir_items import series
from tests.support.fhir_test_server import Ehr
from tests.support.memory_outbox import MemoryOutbox

CLIENT_ID = "rpm-ingest-test"


def deliver(ehr: Ehr, mapper: ObservationMapper, auth: Auth, n: int = 5, bundle: int = 100) -> MemoryOutbox:
    outbox = MemoryOutbox()
    for export in series(n, patient=ehr.patient_id):
        outbox.add(export)
    with build_http_client() as http:
        client = FhirClient(http, ehr.base_url, auth, retry=FAST)
        worker = ExportWorker(outbox, client, mapper, bundle_size=bundle, rng=random.Random(1))
        drain(worker, outbox)
    return outbox


def test_no_auth_is_refused_by_a_protected_server(ehr: Ehr, mapper: ObservationMapper) -> None:
    ehr.server.set_auth("bearer", bearer_token="s3cret")
    outbox = MemoryOutbox()
    outbox.add(series(1, patient=ehr.patient_id)[0])
    with build_http_client() as http:
        worker = ExportWorker(outbox, FhirClient(http, ehr.base_url, NoAuth(), retry=FAST), mapper)
        worker.run_once()
    [row] = outbox.rows.values()
    assert row.state == "pending" and (row.reason or "").startswith("authentication: ")
    assert outbox.retry_delays[0] >= 60  # auth trouble waits for an operator, it is not parked


def test_static_bearer_token(ehr: Ehr, mapper: ObservationMapper) -> None:
    ehr.server.set_auth("bearer", bearer_token="s3cret")
    outbox = deliver(ehr, mapper, BearerAuth("s3cret"))
    assert outbox.count("sent") == 5
    wrong = deliver(ehr, mapper, BearerAuth("wrong"), n=1)
    assert wrong.count("pending") == 1
    for bad in ("", "two words", "tab\t"):
        with pytest.raises(AuthError):
            BearerAuth(bad)


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_smart_backend_services_discovers_signs_and_caches(
    ehr: Ehr, mapper: ObservationMapper, algorithm: str
) -> None:
    key = SigningKey.generate(algorithm)
    ehr.server.set_auth("smart")
    ehr.server.register_client(CLIENT_ID, key.jwks())
    with build_http_client() as http:
        auth = SmartBackendAuth(http, base_url=ehr.base_url, client_id=CLIENT_ID, key=key)
        outbox = deliver(ehr, mapper, auth, n=12, bundle=4)  # three bundles
        assert auth.token_endpoint() == ehr.server.token_url  # from .well-known
    assert outbox.count("sent") == 12
    stats = ehr.server.stats()
    assert stats["tokens_issued"] == 1 and stats["transactions"] == 3


def test_expired_token_is_refreshed_once_and_nothing_is_duplicated(
    ehr: Ehr, mapper: ObservationMapper
) -> None:
    key = SigningKey.generate("ES384")
    ehr.server.set_auth("smart")
    ehr.server.register_client(CLIENT_ID, key.jwks())
    outbox = MemoryOutbox()
    for export in series(6, patient=ehr.patient_id):
        outbox.add(export)
    with build_http_client() as http:
        auth = SmartBackendAuth(
            http, base_url=ehr.base_url, client_id=CLIENT_ID, key=key, token_url=ehr.server.token_url
        )
        worker = ExportWorker(outbox, FhirClient(http, ehr.base_url, auth, retry=FAST), mapper, bundle_size=3)
        assert worker.run_once() == 3
        ehr.server.expire_tokens()  # the EHR ends the token early: the next call gets a 401
        assert worker.run_once() == 3
    assert outbox.count("sent") == 6
    stats = ehr.server.stats()
    assert stats["tokens_issued"] == 2 and stats["unauthorized"] == 1
    ehr.server.set_auth("none")
    assert len(ehr.server.search("Observation")) == 6


def test_token_is_renewed_shortly_before_it_expires(ehr: Ehr) -> None:
    key = SigningKey.generate("RS384")
    ehr.server.set_auth("smart", token_ttl=100)
    ehr.server.register_client(CLIENT_ID, key.jwks())
    now = [1_000_000.0]
    with build_http_client() as http:
        auth = SmartBackendAuth(
            http, base_url=ehr.base_url, client_id=CLIENT_ID, key=key, clock=lambda: now[0]
        )
        first = auth.headers()
        now[0] += 79  # margin: min(60 s, a fifth of 100 s) = 20 s before expiry
        assert auth.headers() == first
        now[0] += 2
        assert auth.headers() != first
    assert auth.tokens_fetched == 2


def test_unregistered_key_and_token_endpoint_outage(ehr: Ehr, mapper: ObservationMapper) -> None:
    registered, stranger = SigningKey.generate("RS384"), SigningKey.generate("RS384")
    ehr.server.set_auth("smart")
    ehr.server.register_client(CLIENT_ID, registered.jwks())
    with build_http_client() as http:
        auth = SmartBackendAuth(http, base_url=ehr.base_url, client_id=CLIENT_ID, key=stranger)
        with pytest.raises(AuthError, match="invalid_client") as refused:
            auth.headers()
        assert refused.value.transient is False
        ehr.server.inject({"action": "status", "status": 503, "target": "token"})
        good = SmartBackendAuth(http, base_url=ehr.base_url, client_id=CLIENT_ID, key=registered)
        with pytest.raises(AuthError) as outage:
            good.headers()
        assert outage.value.transient is True
        assert good.headers()["Authorization"].startswith("Bearer ")
    assert ehr.server.stats()["token_requests_rejected"] == 1


def test_assertion_claims_and_jwks() -> None:
    key = SigningKey.generate("ES384")
    jwks = key.jwks()
    [jwk] = jwks["keys"]
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-384" and jwk["alg"] == "ES384"
    assert jwk["kid"] == key.kid and "d" not in jwk  # public half only
    token = key.sign({"iss": "c", "sub": "c", "aud": "https://ehr/token", "exp": 2_000_000_000, "jti": "1"})
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES384", "kid": key.kid, "typ": "JWT"}
    public = jwt.PyJWK(jwk).key
    claims = jwt.decode(token, public, algorithms=["ES384"], audience="https://ehr/token")
    assert claims["iss"] == claims["sub"] == "c"
    again = SigningKey.from_pem(key.private_pem())
    assert again.kid == key.kid and again.algorithm == "ES384"


def test_unusable_keys_are_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p256 = ec.generate_private_key(ec.SECP256R1())
    for weak in (small, p256):
        pem = weak.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with pytest.raises(AuthError):
            SigningKey.from_pem(pem)
    for junk in (b"", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", b"\x00" * 64):
        with pytest.raises(AuthError, match="cannot read"):
            SigningKey.from_pem(junk)
    with pytest.raises(AuthError, match="cannot read the private key file"):
        SigningKey.from_file(Path("/nonexistent/key.pem"))
    with pytest.raises(AuthError):
        SigningKey.generate("HS256")


def test_factory_picks_the_auth_mode(tmp_path: Path) -> None:
    from fhir_export.errors import ConfigurationError
    from fhir_export.factory import build_auth

    key_file = tmp_path / "k.pem"
    key_file.write_bytes(SigningKey.generate("ES384").private_pem())
    with build_http_client() as http:
        base = "http://127.0.0.1:9/fhir"
        assert isinstance(build_auth("none", http, base_url=base), NoAuth)
        assert isinstance(build_auth("bearer", http, base_url=base, token="t"), BearerAuth)
        smart = build_auth("smart-backend", http, base_url=base, client_id="c", private_key_file=key_file)
        assert isinstance(smart, SmartBackendAuth)
        with pytest.raises(ConfigurationError):
            build_auth("bearer", http, base_url=base)
        with pytest.raises(ConfigurationError):
            build_auth("smart-backend", http, base_url=base, client_id="c")
