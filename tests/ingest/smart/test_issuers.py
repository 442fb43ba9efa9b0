"""RPM_SMART_ISSUERS: the allow-list of EHRs that may launch the dashboard, parsed strictly."""

from __future__ import annotations

import pytest

from ingest.errors import ConfigurationError
from ingest.settings import load_settings
from ingest.smart.issuers import IssuerConfigError, clinic_of, normalise_issuer, parse_issuers


def test_entries_map_issuers_to_clinics_normalised() -> None:
    parsed = parse_issuers(" https://EHR.example/fhir/=north , http://127.0.0.1:8080/R4=south.2 ")
    assert parsed == {"https://ehr.example/fhir": "north", "http://127.0.0.1:8080/R4": "south.2"}
    assert parse_issuers("") == {} and parse_issuers("  ") == {}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("https://ehr.example/fhir", "has no '=<clinic id>'"),
        ("=north", "has no '=<clinic id>'"),
        ("https://ehr.example/fhir=", "clinic id"),
        ("https://ehr.example/fhir=no spaces", "clinic id"),
        ("https://ehr.example/fhir=" + "x" * 65, "clinic id"),
        ("https://ehr.example/fhir=north,", "entry 2 is empty"),
        ("https://ehr.example/fhir=north,,https://b.example=south", "entry 2 is empty"),
        ("ftp://ehr.example/fhir=north", "not an absolute http"),
        ("ehr.example/fhir=north", "not an absolute http"),
        ("https://user:pw@ehr.example/fhir=north", "credentials"),
        ("https://ehr.example/fhir?tenant=a=north", "query"),
        ("https://ehr.example/fhir#x=north", "fragment"),
        ("https://ehr.example:99999/fhir=north", "not an absolute http"),
        ("https://ehr.example/fh ir=north", "not an absolute http"),
        ("https://" + "e" * 600 + ".example=north", "not an absolute http"),
        ("https://ehr.example/fhir=north,https://EHR.example/fhir/=south", "listed twice"),
    ],
)
def test_a_bad_entry_is_refused_naming_it(text: str, reason: str) -> None:
    with pytest.raises(IssuerConfigError, match="entry") as refused:
        parse_issuers(text)
    assert reason in str(refused.value)


def test_an_iss_is_matched_only_to_a_configured_issuer() -> None:
    issuers = parse_issuers("https://ehr.example/fhir=north")
    assert clinic_of(issuers, "https://ehr.example/fhir") == "north"
    assert clinic_of(issuers, "https://EHR.EXAMPLE/fhir/") == "north"
    for other in (
        "https://ehr.example/fhir2",
        "https://ehr.example/fhir/sub",
        "https://ehr.example.evil.example/fhir",
        "https://evil.example/fhir?https://ehr.example/fhir",
        "http://ehr.example/fhir",  # another scheme is another issuer
        "https://ehr.example:8443/fhir",
        "//ehr.example/fhir",
        "",
        "\x00",
        "https://ehr.example/fhir\n",
    ):
        assert clinic_of(issuers, other) is None, other
    assert normalise_issuer("https://[::1]:8443/fhir/") == "https://[::1]:8443/fhir"


def test_settings_refuse_an_incomplete_or_insecure_smart_configuration() -> None:
    with pytest.raises(ConfigurationError, match="RPM_SMART_ISSUERS.*has no"):
        load_settings(_env_file=None, smart_issuers="https://ehr.example/fhir")
    with pytest.raises(ConfigurationError, match="needs RPM_SMART_CLIENT_ID and RPM_PUBLIC_URL"):
        load_settings(_env_file=None, smart_issuers="https://ehr.example/fhir=north")
    with pytest.raises(ConfigurationError, match="RPM_PUBLIC_URL"):
        load_settings(_env_file=None, public_url="https://rpm.example/?a=1")
    production = {
        "environment": "production",
        "database_url": "postgresql://rpm@db/rpm",
        "mqtt_url": "mqtt://broker:1883",
        "smart_client_id": "rpm",
    }
    with pytest.raises(ConfigurationError, match="https://"):
        load_settings(
            _env_file=None,
            smart_issuers="http://ehr.example/fhir=north",
            public_url="https://rpm.example",
            **production,
        )
    with pytest.raises(ConfigurationError, match="https://"):
        load_settings(
            _env_file=None,
            smart_issuers="https://ehr.example/fhir=north",
            public_url="http://rpm.example",
            **production,
        )
    ok = load_settings(
        _env_file=None,
        smart_issuers="https://ehr.example/fhir=north",
        public_url="https://rpm.example/",
        **production,
    )
    assert ok.public_url == "https://rpm.example" and ok.smart_issuers == {
        "https://ehr.example/fhir": "north"
    }
