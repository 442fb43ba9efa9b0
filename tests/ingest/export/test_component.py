"""The export component in the running service: leases renewed while the EHR is slow (so a
second worker never sends the same rows), a clean stop with a request hanging, configuration
errors at start-up."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.errors import ConfigurationError
from ingest.export.component import fhir_export_component
from ingest.settings import Settings
from tests.support.export import add_patient, ehr_patient, hr
from tests.support.fhir_test_server import FhirTestServer
from tests.support.service import running_service


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_slow_ehr_keeps_the_lease_and_no_row_goes_out_twice(
    settings: Settings, ehr: FhirTestServer
) -> None:
    ehr_patient(ehr)
    settings = settings.model_copy(
        update={"fhir_base_url": ehr.base_url, "fhir_workers": 3, "fhir_lease_s": 1.0,
                "fhir_poll_interval_s": 0.05, "fhir_bundle_size": 10}
    )  # fmt: skip
    with running_service(settings, factories=[fhir_export_component]) as svc:
        add_patient(svc.services.pool, fhir_patient_id="pat-1")
        with svc.client(svc.token("admin")) as admin:
            first = admin.post(
                "/v1/readings", json={"device_id": "F0F1F2F3F4F5", "readings": [hr(59, minute=-1)]}
            )
            assert first.status_code == 200
            wait_for(lambda: admin.get("/v1/exports").json()["counts"]["sent"] == 1, "the first reading")
            assert admin.get("/v1/exports").json()["enabled"] is True
            # Each answer takes 3 leases; idle workers poll 20 times a second meanwhile.
            ehr.inject({"action": "delay", "when": "after_commit", "delay_ms": 3000, "count": 3})
            readings = [hr(60 + i, minute=i) for i in range(30)]
            r = admin.post("/v1/readings", json={"device_id": "F0F1F2F3F4F5", "readings": readings})
            assert r.json()["accepted"] == 30
            wait_for(lambda: admin.get("/v1/exports").json()["counts"]["sent"] == 31, "delivery")
    stats = ehr.stats()
    assert stats["entries_existing"] == 0  # no row was sent by a second worker
    assert len(ehr.search("Observation")) == 31


def test_stop_does_not_wait_for_a_hanging_ehr_and_loses_nothing(
    settings: Settings, ehr: FhirTestServer
) -> None:
    ehr_patient(ehr)
    settings = settings.model_copy(
        update={"fhir_base_url": ehr.base_url, "fhir_timeout_s": 1.0, "fhir_poll_interval_s": 0.05}
    )
    with running_service(settings, factories=[fhir_export_component]) as svc:
        pool = svc.services.pool
        add_patient(pool, fhir_patient_id="pat-1")
        ehr.inject({"action": "delay", "when": "before", "delay_ms": 20_000, "count": 10})
        with svc.client(svc.token("admin")) as admin:
            admin.post("/v1/readings", json={"device_id": "F0F1F2F3F4F5", "readings": [hr(70)]})

            def claimed() -> bool:
                with pool.connection() as conn:
                    return conn.execute(
                        "SELECT count(*) FROM outbox WHERE claim_token IS NOT NULL"
                    ).fetchone() == (1,)

            wait_for(claimed, "the row to be claimed")
        started = time.monotonic()
    assert time.monotonic() - started < 15  # the stop did not wait for the EHR's 20 s
    import psycopg

    with psycopg.connect(settings.database_url or "") as conn:
        row = conn.execute("SELECT status FROM outbox").fetchone()
    assert row == ("pending",)


def test_unusable_auth_configuration_stops_start_up(settings: Settings, tmp_path: Path) -> None:
    key = tmp_path / "missing.pem"
    settings = settings.model_copy(
        update={"fhir_base_url": "https://ehr.example/fhir", "fhir_auth": "smart-backend",
                "fhir_client_id": "c", "fhir_private_key_file": key}
    )  # fmt: skip
    with (
        pytest.raises(ConfigurationError, match="FHIR export"),
        running_service(settings, [fhir_export_component]),
    ):
        pass
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    settings = settings.model_copy(update={"fhir_private_key_file": garbage})
    with (
        pytest.raises(ConfigurationError, match="FHIR export"),
        running_service(settings, [fhir_export_component]),
    ):
        pass


@pytest.mark.parametrize(
    "url",
    ["ftp://ehr.example/fhir", "ehr.example/fhir", "http://", "http://host/fhir?x=1", "http://a b/fhir"],
)
def test_bad_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="RPM_FHIR_BASE_URL"):
        Settings(_env_file=None, fhir_base_url=url)  # type: ignore[call-arg]
    assert Settings(_env_file=None, fhir_base_url="").fhir_base_url is None  # type: ignore[call-arg]
