"""The id token check (PyJWT), token by token: only a token signed by the EHR's published key,
for this client, from the EHR's issuer, unexpired and with the launch's nonce passes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ingest.smart.idtoken import IdTokenInvalid, UnknownSigningKey, validate_id_token
from tests.support.smart_server import KID, other_key, public_jwks, signing_key

ISSUER = "https://ehr.example/auth"
CLIENT = "rpm-dashboard"
NONCE = "n-0123456789"


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "u1",
        "aud": CLIENT,
        "iat": now,
        "exp": now + 300,
        "nonce": NONCE,
        "fhirUser": "https://ehr.example/fhir/Practitioner/u1",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: Any = None, alg: str = "RS256", kid: str | None = KID) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, key or signing_key(), algorithm=alg, headers=headers)


def check(token: str, jwks: dict[str, Any] | None = None) -> dict[str, Any]:
    return validate_id_token(token, jwks=jwks or public_jwks(), issuer=ISSUER, client_id=CLIENT, nonce=NONCE)


def test_a_valid_token_gives_its_claims() -> None:
    assert check(sign(claims()))["fhirUser"] == "https://ehr.example/fhir/Practitioner/u1"
    assert check(sign(claims(aud=[CLIENT])))["sub"] == "u1"
    assert check(sign(claims(aud=[CLIENT, "other"], azp=CLIENT)))["sub"] == "u1"
    assert check(sign(claims(), kid=None))["sub"] == "u1"  # one key published: no kid needed


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: sign(claims(), key=other_key()), "signature does not verify"),
        (lambda: sign(claims(), key=other_key(), kid="k2"), "does not publish"),
        (lambda: sign(claims(aud="another-app")), "another application"),
        (lambda: sign(claims(aud=[CLIENT, "other"])), "several audiences"),
        (lambda: sign(claims(iss="https://ehr.example/fhir")), "another issuer"),
        (lambda: sign(claims(exp=int(time.time()) - 120)), "expired"),
        (lambda: sign(claims(iat=int(time.time()) + 3600, nbf=int(time.time()) + 3600)), "not valid yet"),
        (lambda: sign(claims(nonce="another")), "nonce"),
        (lambda: sign(claims(nonce=None)), "nonce"),
        (lambda: sign(claims(exp=None)), "'exp'"),
        (lambda: sign(claims(sub=None)), "'sub'"),
        (lambda: "not.a.jwt", "not a signed JWT"),
        (lambda: "", "missing"),
        (lambda: "e" * 20000, "too long"),
    ],
)
def test_an_invalid_token_is_refused(token: Any, reason: str) -> None:
    with pytest.raises(IdTokenInvalid, match=reason):
        check(token())


def _unsigned(payload: dict[str, Any], alg: str) -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{part({'alg': alg, 'kid': KID})}.{part(payload)}."


def test_alg_none_and_hmac_keyed_with_the_public_key_are_refused() -> None:
    with pytest.raises(IdTokenInvalid, match="not an accepted algorithm"):
        check(_unsigned(claims(), "none"))
    # The classic confusion: HS256 "signed" with the EHR's public key (which anyone has) as secret.
    public_pem = (
        signing_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    unsigned = _unsigned(claims(), "HS256")[:-1]
    mac = hmac.new(public_pem, unsigned.encode(), hashlib.sha256).digest()
    forged = f"{unsigned}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(IdTokenInvalid, match="HS256"):
        check(forged)


def test_a_key_of_the_wrong_type_is_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(IdTokenInvalid):
        check(sign(claims(), key=ec_key, alg="ES256"))


def test_an_unknown_kid_is_reported_as_such_so_the_key_set_can_be_read_again() -> None:
    with pytest.raises(UnknownSigningKey):
        check(sign(claims(), kid="rotated"))
    with pytest.raises(UnknownSigningKey):
        check(sign(claims()), jwks={"keys": []})
    with pytest.raises(UnknownSigningKey):
        check(sign(claims()), jwks={"keys": [{"kty": "nonsense"}]})
