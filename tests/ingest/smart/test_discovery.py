"""The EHR's discovery documents, checked before anything is sent to the endpoints they name."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.smart.discovery import parse_openid_configuration, parse_smart_configuration
from ingest.smart.errors import EhrUnavailable

ISS = "https://ehr.example/fhir"


def smart(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "issuer": "https://ehr.example/auth",
        "authorization_endpoint": "https://ehr.example/auth/authorize",
        "token_endpoint": "https://ehr.example/auth/token",
        "code_challenge_methods_supported": ["S256"],
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def test_a_smart_configuration_gives_the_endpoints_and_the_openid_issuer() -> None:
    config = parse_smart_configuration(smart(), ISS)
    assert config.authorization_endpoint == "https://ehr.example/auth/authorize"
    assert config.issuer == "https://ehr.example/auth"
    assert (
        parse_smart_configuration(smart(issuer=None, code_challenge_methods_supported=None), ISS).issuer
        == ISS
    )


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ([], "not a JSON object"),
        (smart(authorization_endpoint=None), "authorization_endpoint"),
        (smart(token_endpoint="javascript:alert(1)"), "token_endpoint"),
        (smart(token_endpoint=42), "token_endpoint"),
        (smart(authorization_endpoint="http://ehr.example/authorize"), "without TLS"),
        (smart(code_challenge_methods_supported=["plain"]), "S256"),
        (smart(code_challenge_methods_supported="S256"), "S256"),
        (smart(issuer=["x"]), "issuer"),
    ],
)
def test_an_unusable_smart_configuration_is_refused(doc: object, reason: str) -> None:
    with pytest.raises(EhrUnavailable, match=reason):
        parse_smart_configuration(doc, ISS)


def test_the_openid_configuration_must_name_the_issuer_it_was_read_from() -> None:
    doc = {"issuer": "https://ehr.example/auth", "jwks_uri": "https://ehr.example/auth/jwks"}
    assert parse_openid_configuration(doc, "https://ehr.example/auth/").jwks_uri.endswith("/jwks")
    with pytest.raises(EhrUnavailable, match="another issuer"):
        parse_openid_configuration({**doc, "issuer": "https://evil.example"}, "https://ehr.example/auth")
    with pytest.raises(EhrUnavailable, match="jwks_uri"):
        parse_openid_configuration({"issuer": doc["issuer"]}, "https://ehr.example/auth")
    with pytest.raises(EhrUnavailable, match="not a JSON object"):
        parse_openid_configuration("x", "https://ehr.example/auth")
