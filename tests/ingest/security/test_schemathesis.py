"""Property-based fuzzing of every operation in the OpenAPI schema: hostile, malformed, oversized and
out-of-range input gets a 4xx, never a 500. Runs against the real service over HTTP.

``RPM_FUZZ_EXAMPLES`` sets the number of examples per operation (default 30).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from ingest.alerts.component import alerts_component
from ingest.runtime import default_components
from ingest.settings import Settings
from tests.ingest.security.tenants import make_tenants
from tests.support.db import RUN_ID, create_database, drop_database
from tests.support.service import RunningService, running_service
from tests.support.webhooks import offline_resolver

EXAMPLES = int(os.environ.get("RPM_FUZZ_EXAMPLES", "30"))
#: Infinite by design (Server-Sent Events); its parameters are fuzzed by the alert stream's own tests.
STREAMS = ("/v1/alerts/stream",)


@pytest.fixture(scope="module")
def fuzzed(
    template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningService, str]]:
    """One service (all components, MQTT off, no rate limit) and an admin token for the whole run."""
    name = f"rpm_test_{RUN_ID}_fuzz_{uuid.uuid4().hex[:8]}"
    url = create_database(name, template=template_database)
    service_settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        mqtt_enabled=False,
        rate_limit_per_minute=0,
        webhook_allow_networks="127.0.0.1/32",  # the tenants' webhooks point there
        data_dir=Path(tmp_path_factory.mktemp("fuzz")),
    )
    try:
        # Webhook hosts are generated: resolve none of them through a name server.
        factories = [
            partial(alerts_component, resolver=offline_resolver) if f is alerts_component else f
            for f in default_components()
        ]
        with running_service(service_settings, factories=factories) as svc:
            make_tenants(svc)  # some data for the operations to find
            yield svc, svc.token("admin", name="fuzzer")
    finally:
        drop_database(name)


def test_no_input_makes_the_api_fail(fuzzed: tuple[RunningService, str]) -> None:
    svc, token = fuzzed
    schema = schemathesis.openapi.from_url(f"{svc.base_url}/openapi.json")
    failures: dict[str, str] = {}
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in STREAMS:
            continue
        tested += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=svc.base_url,
                headers={"Authorization": f"Bearer {token}"},
                checks=[not_a_server_error],
                timeout=30,
            )

        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 - every failing operation is reported below
            failures[operation.label] = str(exc)[:2000]
    assert tested > 20
    with svc.services.pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM audit_log WHERE actor_name = 'fuzzer'").fetchone()
    assert row is not None and row[0] > tested * 5, "the generated requests should reach the API"
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
