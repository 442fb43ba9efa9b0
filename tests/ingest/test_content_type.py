"""Every request body of the API is JSON: another content type (curl's ``-d`` sends a form type)
is answered 415 with what to send instead, on every route that takes a body, before anything else.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ingest.api.deps import JSON_BODY_HINT, is_json_media_type
from ingest.settings import Settings
from tests.support.service import RunningService, running_service

FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends
ZERO = "00000000-0000-0000-0000-000000000000"
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@pytest.fixture
def full_service(settings: Settings) -> Iterator[RunningService]:
    """Every default component, so every router (alerts, export, dashboard) is mounted; MQTT off."""
    with running_service(settings.model_copy(update={"mqtt_enabled": False}), factories=None) as svc:
        yield svc


@pytest.fixture
def admin(full_service: RunningService) -> Iterator[httpx.Client]:
    with full_service.client(full_service.token("admin")) as client:
        yield client


def body_routes(admin: httpx.Client) -> list[tuple[str, str]]:
    """(method, path) of every operation whose request body is JSON, path parameters filled in."""
    spec: dict[str, Any] = admin.get("/openapi.json").json()
    found = [("POST", "/v1/readings")]  # reads its JSON body itself, so it declares none
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert set(operation["requestBody"]["content"]) == {"application/json"}, (method, template)
                found.append((method.upper(), re.sub(r"\{[^}]+\}", ZERO, template)))
    return found


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"],
)
def test_a_body_that_is_not_json_is_refused_on_every_body_route(
    admin: httpx.Client, content_type: str | None
) -> None:
    routes = body_routes(admin)
    assert len(routes) >= 10  # patients, devices, assignment, readings, thresholds, alerts, rules...
    for method, path in routes:
        if content_type is None and path == "/v1/readings":
            continue  # reads the body as JSON whatever it is labelled (below)
        headers = {} if content_type is None else {"Content-Type": content_type}
        r = admin.request(method, path, content=b'{"mrn": "1"}', headers=headers)
        assert r.status_code == 415, (method, path, r.status_code, r.text)
        detail = r.json()["detail"]
        assert JSON_BODY_HINT in detail, detail
        assert (content_type or "no Content-Type").split(";")[0] in detail


def test_the_curl_form_type_gets_a_sentence_saying_what_to_send(admin: httpx.Client) -> None:
    r = admin.post("/v1/patients", content=b'{"mrn": "12345", "display_name": "Ada"}', headers=FORM)
    assert r.status_code == 415
    assert r.json() == {
        "detail": "this endpoint takes JSON (Content-Type 'application/x-www-form-urlencoded' given): "
        "send the body as JSON with Content-Type: application/json"
    }
    with httpx.Client(base_url=str(admin.base_url)) as anonymous:  # before authentication too
        assert anonymous.post("/v1/patients", content=b"mrn=1", headers=FORM).status_code == 415


def send(client: httpx.Client, method: str, path: str, body: dict[str, Any], content_type: str | None) -> Any:
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = client.request(method, path, content=json.dumps(body).encode(), headers=headers)
    assert r.status_code in (200, 201), (content_type, path, r.text)
    return r.json()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/merge-patch+json",
    ],
)
def test_json_and_its_suffix_types_are_accepted(admin: httpx.Client, content_type: str) -> None:
    tag = uuid.uuid4().hex[:8]
    patient = send(admin, "POST", "/v1/patients", {"mrn": tag, "display_name": "Ada"}, content_type)["id"]
    send(admin, "PATCH", f"/v1/patients/{patient}", {"display_name": "Ada L."}, content_type)
    send(admin, "POST", "/v1/devices", {"id": f"D-{tag}", "type": "bp_cuff"}, content_type)
    send(
        admin,
        "PUT",
        f"/v1/devices/D-{tag}/assignment",
        {"patient_id": patient, "since": iso(NOW)},
        content_type,
    )
    reading = {"metric": "heart_rate", "value": 72, "unit": "/min", "measured_at": iso(NOW)}
    result = send(
        admin, "POST", "/v1/readings", {"device_id": f"D-{tag}", "readings": [reading]}, content_type
    )
    assert result["accepted"] == 1


def test_readings_without_a_content_type_are_still_read_as_json(admin: httpx.Client) -> None:
    """``POST /v1/readings`` has always read its body as JSON without a label; it still does."""
    reading = {"metric": "heart_rate", "value": 72, "unit": "/min", "measured_at": iso(NOW)}
    result = send(admin, "POST", "/v1/readings", {"device_id": "NOT-ENROLLED", "readings": [reading]}, None)
    assert result["accepted"] == 0 and len(result["rejected"]) == 1  # read, then judged


def test_a_request_without_a_body_is_unaffected(admin: httpx.Client) -> None:
    # a form content type on a body-less request does not matter
    assert admin.get("/v1/patients", headers=FORM).status_code == 200
    missing = f"/v1/deadletters/{ZERO}/replay"
    assert admin.post(missing, headers=FORM).status_code == 404  # no body: the route answers
    # an empty body is no body: the route's own validation answers (a missing body is a 422)
    assert admin.post("/v1/patients", content=b"", headers=FORM).status_code == 422


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("APPLICATION/JSON", True),
        ("application/fhir+json", True),
        ("application/merge-patch+json; charset=utf-8", True),
        ("application/x-www-form-urlencoded", False),
        ("text/json", False),
        ("text/plain", False),
        ("application/jsonp", False),
        ("multipart/form-data; boundary=x", False),
        ("", False),
    ],
)
def test_json_media_types(value: str, expected: bool) -> None:
    assert is_json_media_type(value) is expected
