"""For every route of the API: how a caller of one clinic tries to reach another clinic's data.

The tenancy and audit tests enumerate the application's routes and fail on any route that has no
entry here, so a new endpoint cannot ship without saying how it keeps clinics apart.

An entry maps (method, route template) to a function of (attacker, victim) returning probes.
A probe expects 403/404 (``DENIED``) or, for listings, 200 with none of the victim's data in it;
:func:`perform` sends one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from ingest.security.audit import RouteInfo, app_routes
from tests.ingest.security.tenants import NOW, Tenant, ecg_strip_id, iso
from tests.support.service import RunningService

DENIED: Final = frozenset({403, 404})
LISTED: Final = frozenset({200})
SMART_REFUSED: Final = frozenset({400})  # a launch refused, or a bearer token "signing out"
STREAM_READ_S = 1.0


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    expect: frozenset[int] = DENIED
    stream: bool = False  # a text/event-stream: read what arrives for a moment, then hang up

    def sent(self) -> str:
        """Everything the caller itself put in the request (it may come back in an error)."""
        return f"{self.path} {self.params} {self.json}"


Cases = Callable[[Tenant, Tenant], list[Probe]]


def _one(probe: Callable[[Tenant, Tenant], Probe]) -> Cases:
    return lambda a, v: [probe(a, v)]


#: Routes outside /v1 that carry no clinic's data (static files, health, documentation).
PUBLIC_ROUTES: Final = frozenset(
    {
        "/openapi.json",
        "/docs",
        "/redoc",
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/dashboard",
        "/dashboard/{path}",
    }
)

CASES: dict[tuple[str, str], Cases] = {
    # --- clinics: only admins create; a clinician lists only its own
    ("POST", "/v1/clinics"): _one(lambda a, v: Probe("POST", "/v1/clinics", json={"id": "x", "name": "X"})),
    ("GET", "/v1/clinics"): _one(lambda a, v: Probe("GET", "/v1/clinics", expect=LISTED)),
    # --- patients
    ("POST", "/v1/patients"): _one(
        lambda a, v: Probe(
            "POST", "/v1/patients", json={"mrn": "MRN-X", "display_name": "Intruder", "clinic": v.clinic}
        )
    ),
    ("GET", "/v1/patients"): lambda a, v: [
        Probe("GET", "/v1/patients", expect=LISTED),
        Probe("GET", "/v1/patients", params={"q": v.patient_name}, expect=LISTED),
        Probe("GET", "/v1/patients", params={"q": v.mrn}, expect=LISTED),
    ],
    ("GET", "/v1/patients/{patient_id}"): _one(lambda a, v: Probe("GET", f"/v1/patients/{v.patient_id}")),
    ("PATCH", "/v1/patients/{patient_id}"): lambda a, v: [
        Probe("PATCH", f"/v1/patients/{v.patient_id}", json={"display_name": "Hijacked"}),
        Probe("PATCH", f"/v1/patients/{v.patient_id}", json={"fhir_patient_id": "stolen-1"}),
    ],
    ("GET", "/v1/patients/{patient_id}/devices"): _one(
        lambda a, v: Probe("GET", f"/v1/patients/{v.patient_id}/devices")
    ),
    ("GET", "/v1/patients/{patient_id}/readings"): lambda a, v: [
        Probe("GET", f"/v1/patients/{v.patient_id}/readings"),
        Probe("GET", f"/v1/patients/{v.patient_id}/readings", params={"bucket": "1h"}),
    ],
    # --- ECG strips
    ("GET", "/v1/patients/{patient_id}/ecg"): _one(
        lambda a, v: Probe("GET", f"/v1/patients/{v.patient_id}/ecg")
    ),
    ("GET", "/v1/ecg/{strip_id}"): _one(lambda a, v: Probe("GET", f"/v1/ecg/{ecg_strip_id(v.device_id)}")),
    # --- billing: the clinic's time zone, episodes, clinician time, the monthly report
    ("PATCH", "/v1/clinics/{clinic_id}"): lambda a, v: [
        Probe("PATCH", f"/v1/clinics/{v.clinic}", json={"timezone": "Asia/Tokyo"}),
        Probe("PATCH", f"/v1/clinics/{v.clinic}", json={"observation_profile": "phd"}),
    ],
    # --- patients from the EHR (docs/ehr.md): another clinic's patient is not found; the
    # import is for administrators only
    ("POST", "/v1/patients/{patient_id}/ehr-link"): _one(
        lambda a, v: Probe("POST", f"/v1/patients/{v.patient_id}/ehr-link")
    ),
    ("POST", "/v1/patients/import"): _one(
        lambda a, v: Probe("POST", "/v1/patients/import", json={"group": "cohort-1", "clinic": v.clinic})
    ),
    ("POST", "/v1/patients/{patient_id}/episodes"): _one(
        lambda a, v: Probe("POST", f"/v1/patients/{v.patient_id}/episodes", json={"start": iso(NOW)})
    ),
    ("GET", "/v1/patients/{patient_id}/episodes"): _one(
        lambda a, v: Probe("GET", f"/v1/patients/{v.patient_id}/episodes")
    ),
    ("POST", "/v1/patients/{patient_id}/time"): _one(
        lambda a, v: Probe(
            "POST", f"/v1/patients/{v.patient_id}/time", json={"minutes": 5, "interactive": True}
        )
    ),
    ("GET", "/v1/patients/{patient_id}/time"): _one(
        lambda a, v: Probe("GET", f"/v1/patients/{v.patient_id}/time")
    ),
    ("DELETE", "/v1/patients/{patient_id}/time/{entry_id}"): _one(
        lambda a, v: Probe("DELETE", f"/v1/patients/{v.patient_id}/time/00000000-0000-4000-8000-000000000000")
    ),
    ("GET", "/v1/billing"): lambda a, v: [
        Probe("GET", "/v1/billing", params={"clinic": v.clinic}),
        Probe("GET", "/v1/billing", params={"patient": v.patient_id}),
        Probe("GET", "/v1/billing", expect=LISTED),
    ],
    # --- devices
    ("POST", "/v1/devices"): _one(
        lambda a, v: Probe(
            "POST", "/v1/devices", json={"id": "EVIL-1", "type": "bp_cuff", "clinic": v.clinic}
        )
    ),
    ("GET", "/v1/devices/{device_id}"): _one(lambda a, v: Probe("GET", f"/v1/devices/{v.device_id}")),
    ("PUT", "/v1/devices/{device_id}/assignment"): lambda a, v: [
        # take over the other clinic's device ...
        Probe(
            "PUT",
            f"/v1/devices/{v.device_id}/assignment",
            json={"patient_id": a.patient_id, "since": iso(NOW)},
        ),
        # ... or point one's own device at the other clinic's patient (no existence oracle either)
        Probe(
            "PUT",
            f"/v1/devices/{a.device_id}/assignment",
            json={"patient_id": v.patient_id, "since": iso(NOW)},
        ),
    ],
    ("GET", "/v1/devices/{device_id}/assignments"): _one(
        lambda a, v: Probe("GET", f"/v1/devices/{v.device_id}/assignments")
    ),
    # --- readings: posting for another clinic's device
    ("POST", "/v1/readings"): _one(
        lambda a, v: Probe(
            "POST",
            "/v1/readings",
            json={
                "device_id": v.device_id,
                "readings": [{"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": iso(NOW)}],
            },
        )
    ),
    # --- administration
    ("GET", "/v1/dead-letters"): _one(lambda a, v: Probe("GET", "/v1/dead-letters")),
    ("GET", "/v1/dead-letters/summary"): _one(lambda a, v: Probe("GET", "/v1/dead-letters/summary")),
    ("POST", "/v1/dead-letters/{letter_id}/replay"): _one(
        lambda a, v: Probe("POST", "/v1/dead-letters/1/replay")
    ),
    ("GET", "/v1/audit"): _one(lambda a, v: Probe("GET", "/v1/audit")),
    # --- alerts
    ("GET", "/v1/alerts"): lambda a, v: [
        Probe("GET", "/v1/alerts", expect=LISTED),
        Probe("GET", "/v1/alerts", params={"patient_id": v.patient_id}, expect=LISTED),
        Probe(
            "GET",
            "/v1/alerts",
            params={"status": "open,acknowledged,resolved", "order": "oldest"},
            expect=LISTED,
        ),
    ],
    ("GET", "/v1/alerts/stream"): lambda a, v: [
        # replaying the whole event log from the start, and following one patient
        Probe("GET", "/v1/alerts/stream", params={"last_event_id": 0}, expect=LISTED, stream=True),
        Probe(
            "GET",
            "/v1/alerts/stream",
            params={"last_event_id": 0, "patient_id": v.patient_id},
            expect=LISTED,
            stream=True,
        ),
    ],
    ("GET", "/v1/alerts/{alert_id}"): _one(lambda a, v: Probe("GET", f"/v1/alerts/{v.alert_id}")),
    ("POST", "/v1/alerts/{alert_id}/acknowledge"): _one(
        lambda a, v: Probe("POST", f"/v1/alerts/{v.alert_id}/acknowledge", json={"note": "mine now"})
    ),
    ("POST", "/v1/alerts/{alert_id}/resolve"): _one(
        lambda a, v: Probe("POST", f"/v1/alerts/{v.alert_id}/resolve", json={"note": "gone"})
    ),
    # --- the kinds of alert rules: the same for every clinic, nobody's data
    ("GET", "/v1/alert-rule-kinds"): _one(lambda a, v: Probe("GET", "/v1/alert-rule-kinds", expect=LISTED)),
    # --- thresholds and alert rules of a patient
    ("GET", "/v1/patients/{patient_id}/thresholds"): _one(
        lambda a, v: Probe("GET", f"/v1/patients/{v.patient_id}/thresholds")
    ),
    ("GET", "/v1/patients/{patient_id}/thresholds/{metric}"): _one(
        lambda a, v: Probe("GET", f"/v1/patients/{v.patient_id}/thresholds/heart_rate")
    ),
    ("PUT", "/v1/patients/{patient_id}/thresholds/{metric}"): _one(
        lambda a, v: Probe("PUT", f"/v1/patients/{v.patient_id}/thresholds/heart_rate", json={"high": 250})
    ),
    ("DELETE", "/v1/patients/{patient_id}/thresholds/{metric}"): _one(
        lambda a, v: Probe("DELETE", f"/v1/patients/{v.patient_id}/thresholds/heart_rate")
    ),
    ("GET", "/v1/patients/{patient_id}/alert-rules"): _one(
        lambda a, v: Probe("GET", f"/v1/patients/{v.patient_id}/alert-rules")
    ),
    ("PUT", "/v1/patients/{patient_id}/alert-rules/{key}"): _one(
        lambda a, v: Probe(
            "PUT", f"/v1/patients/{v.patient_id}/alert-rules/threshold:heart_rate", json={"enabled": False}
        )
    ),
    ("DELETE", "/v1/patients/{patient_id}/alert-rules/{key}"): _one(
        lambda a, v: Probe("DELETE", f"/v1/patients/{v.patient_id}/alert-rules/threshold:heart_rate")
    ),
    # --- clinic-wide rules and webhooks
    ("GET", "/v1/clinics/{clinic_id}/alert-rules"): _one(
        lambda a, v: Probe("GET", f"/v1/clinics/{v.clinic}/alert-rules")
    ),
    ("PUT", "/v1/clinics/{clinic_id}/alert-rules/{key}"): _one(
        lambda a, v: Probe(
            "PUT", f"/v1/clinics/{v.clinic}/alert-rules/threshold:heart_rate", json={"enabled": False}
        )
    ),
    ("DELETE", "/v1/clinics/{clinic_id}/alert-rules/{key}"): _one(
        lambda a, v: Probe("DELETE", f"/v1/clinics/{v.clinic}/alert-rules/threshold:heart_rate")
    ),
    ("POST", "/v1/clinics/{clinic_id}/webhooks"): _one(
        lambda a, v: Probe(
            "POST", f"/v1/clinics/{v.clinic}/webhooks", json={"url": "http://127.0.0.1:9/steal"}
        )
    ),
    ("GET", "/v1/clinics/{clinic_id}/webhooks"): _one(
        lambda a, v: Probe("GET", f"/v1/clinics/{v.clinic}/webhooks")
    ),
    ("DELETE", "/v1/clinics/{clinic_id}/webhooks/{webhook_id}"): _one(
        lambda a, v: Probe("DELETE", f"/v1/clinics/{v.clinic}/webhooks/{v.webhook_id}")
    ),
    ("GET", "/v1/clinics/{clinic_id}/webhooks/{webhook_id}/deliveries"): lambda a, v: [
        Probe("GET", f"/v1/clinics/{v.clinic}/webhooks/{v.webhook_id}/deliveries"),
        # the other clinic's webhook under one's own clinic
        Probe("GET", f"/v1/clinics/{a.clinic}/webhooks/{v.webhook_id}/deliveries"),
    ],
    # --- FHIR export status
    ("GET", "/v1/exports"): lambda a, v: [
        Probe("GET", "/v1/exports", expect=LISTED),
        Probe("GET", "/v1/exports", params={"clinic": v.clinic}),
    ],
    ("GET", "/v1/exports/rows"): lambda a, v: (
        [
            Probe("GET", "/v1/exports/rows", params={"status": status}, expect=LISTED)
            for status in ("pending", "waiting", "sent", "failed")
        ]
        + [Probe("GET", "/v1/exports/rows", params={"status": "waiting", "clinic": v.clinic})]
    ),
    ("GET", "/v1/exports/{export_id}"): _one(lambda a, v: Probe("GET", f"/v1/exports/{v.export_id}")),
    ("POST", "/v1/exports/{export_id}/retry"): _one(
        lambda a, v: Probe("POST", f"/v1/exports/{v.export_id}/retry")
    ),
    ("POST", "/v1/exports/retry-failed"): lambda a, v: [
        Probe("POST", "/v1/exports/retry-failed", json={"clinic": v.clinic}),
        Probe("POST", "/v1/exports/retry-failed", json={"patient_id": v.patient_id}),
        # one's own clinic: allowed, and it says nothing about the other clinic
        Probe("POST", "/v1/exports/retry-failed", json={}, expect=LISTED),
    ],
    # --- dashboard API
    ("GET", "/v1/dashboard/me"): _one(lambda a, v: Probe("GET", "/v1/dashboard/me", expect=LISTED)),
    ("GET", "/v1/dashboard/metrics"): _one(lambda a, v: Probe("GET", "/v1/dashboard/metrics", expect=LISTED)),
    ("GET", "/v1/dashboard/patients"): _one(
        lambda a, v: Probe("GET", "/v1/dashboard/patients", expect=LISTED)
    ),
    ("GET", "/v1/dashboard/patients/{patient_id}"): _one(
        lambda a, v: Probe("GET", f"/v1/dashboard/patients/{v.patient_id}")
    ),
    # --- SMART launch (not configured here: every launch is refused with a page; the clinic of a
    # session is the issuer's, never the caller's choice: tests/ingest/smart/test_launch.py)
    ("GET", "/smart/launch"): _one(
        lambda a, v: Probe(
            "GET", "/smart/launch", params={"iss": "https://ehr.example/fhir"}, expect=SMART_REFUSED
        )
    ),
    ("GET", "/smart/callback"): _one(
        lambda a, v: Probe("GET", "/smart/callback", params={"state": "s", "code": "c"}, expect=SMART_REFUSED)
    ),
    ("POST", "/smart/logout"): _one(lambda a, v: Probe("POST", "/smart/logout", expect=SMART_REFUSED)),
}


def api_routes(svc: RunningService) -> list[RouteInfo]:
    """Every route the running service's application serves."""
    assert svc.runtime.app is not None
    return app_routes(svc.runtime.app)


def perform(client: httpx.Client, probe: Probe) -> tuple[int, str]:
    """Send a probe; a stream is read for a moment (it never ends by itself)."""
    if not probe.stream:
        r = client.request(probe.method, probe.path, params=probe.params, json=probe.json)
        return r.status_code, r.text
    timeout = httpx.Timeout(5.0, read=STREAM_READ_S)
    with client.stream(probe.method, probe.path, params=probe.params, timeout=timeout) as r:
        if r.status_code != 200:
            return r.status_code, r.read().decode()
        received = bytearray()
        deadline = time.monotonic() + STREAM_READ_S
        try:
            for chunk in r.iter_raw():
                received += chunk
                if time.monotonic() > deadline or len(received) > 65536:
                    break
        except httpx.ReadTimeout:
            pass  # nothing more arrived: the stream holds nothing else for this caller
        return r.status_code, received.decode(errors="replace")
