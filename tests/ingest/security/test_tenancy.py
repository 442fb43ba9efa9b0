"""Two clinics share one deployment: every endpoint refuses (403/404) or hides the other's data.

The routes come from the running application, so an endpoint added without a case in
``route_cases.CASES`` fails ``test_every_route_has_a_tenancy_case``.
"""

from __future__ import annotations

import pytest

from tests.ingest.security.route_cases import CASES, PUBLIC_ROUTES, api_routes, perform
from tests.ingest.security.tenants import make_tenants
from tests.support.service import RunningService


def test_every_route_has_a_tenancy_case(full_service: RunningService) -> None:
    missing = []
    for info in api_routes(full_service):
        if info.template in PUBLIC_ROUTES:
            continue
        for method in sorted(info.methods - {"HEAD", "OPTIONS"}):
            if (method, info.template) not in CASES:
                missing.append(f"{method} {info.template}")
    assert not missing, (
        "routes without a cross-tenant case in tests/ingest/security/route_cases.py: " + ", ".join(missing)
    )
    stale = set(CASES) - {(m, i.template) for i in api_routes(full_service) for m in i.methods}
    assert not stale, f"cases for routes that no longer exist: {sorted(stale)}"


def test_public_routes_are_outside_the_api(full_service: RunningService) -> None:
    assert not [p for p in PUBLIC_ROUTES if p.startswith("/v1")]


@pytest.mark.parametrize("direction", ["north->south", "south->north"])
def test_no_clinic_reaches_another_clinics_data(full_service: RunningService, direction: str) -> None:
    north, south, _ = make_tenants(full_service)
    attacker, victim = (north, south) if direction == "north->south" else (south, north)
    failures = []
    for (method, template), cases in sorted(CASES.items()):
        for probe in cases(attacker, victim):
            status, text = perform(attacker.client, probe)
            leaked = [m for m in victim.markers() if m in text and m not in probe.sent()]
            if status not in probe.expect or leaked:
                failures.append(
                    f"{method} {template} {probe.params or ''}: {status} leaked={leaked} {text[:200]}"
                )
    assert not failures, "\n".join(failures)


def test_each_clinic_still_sees_its_own_data(full_service: RunningService) -> None:
    north, south, admin = make_tenants(full_service)
    for tenant in (north, south):
        r = tenant.client.get(f"/v1/patients/{tenant.patient_id}")
        assert r.status_code == 200 and r.json()["display_name"] == tenant.patient_name
        listed = tenant.client.get("/v1/patients").json()
        assert [p["id"] for p in listed] == [tenant.patient_id]
        r = tenant.client.get(f"/v1/patients/{tenant.patient_id}/readings")
        assert r.status_code == 200 and len(r.json()["readings"]) == 4
    # admins manage every clinic
    ids = {p["id"] for p in admin.get("/v1/patients").json()}
    assert {north.patient_id, south.patient_id} <= ids


def test_device_token_reaches_only_its_own_device(full_service: RunningService) -> None:
    north, south, _ = make_tenants(full_service)
    device_token = full_service.token("device", device=north.device_id, name="cuff")
    with full_service.client(device_token) as device:
        body = {
            "device_id": south.device_id,
            "readings": [
                {"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": "2026-01-01T00:00:00Z"}
            ],
        }
        assert device.post("/v1/readings", json=body).status_code == 403
        for path in (f"/v1/patients/{north.patient_id}", "/v1/patients", f"/v1/devices/{north.device_id}"):
            r = device.get(path)
            assert r.status_code == 403, (path, r.text)
