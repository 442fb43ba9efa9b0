"""The live alert stream (SSE): live delivery from every ingest path, resumption, heartbeat,
proxy-friendly headers, and tenancy."""

from __future__ import annotations

import time

from ingest.alerts.engine import AlertEngine
from ingest.pipeline import Envelope, Pipeline, utc_now
from tests.ingest.alerts.sse import SSEClient
from tests.support.alerts import Clinic, ago, reading
from tests.support.service import RunningService


def test_stream_delivers_an_alert_opened_by_an_http_reading(svc: RunningService, clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    token = svc.token("clinician", clinic="default")
    with SSEClient(svc.base_url, token) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "no-cache" in stream.headers["cache-control"]
        assert stream.headers["x-accel-buffering"] == "no"
        assert stream.retry == 3000
        clinic.post("CUFF-1", reading("systolic_bp", 190, ago(minutes=1)))
        event = stream.next()
        assert event.event == "alert" and event.id == str(event.data["event_id"])
        assert event.data["type"] == "opened"
        alert = event.data["alert"]
        assert (alert["patient_id"], alert["rule"], alert["severity"], alert["status"]) == (
            pid,
            "threshold:blood_pressure",
            "critical",
            "open",
        )
        # the same change, acknowledged from the API, follows on the stream
        clinic.http.post(f"/v1/alerts/{alert['id']}/acknowledge", json={"note": "seen"})
        ack = stream.next()
        assert (ack.data["type"], ack.data["note"], ack.data["alert"]["status"]) == (
            "acknowledged",
            "seen",
            "acknowledged",
        )
        assert int(ack.id or 0) > int(event.id or 0)


def test_stream_resumes_from_last_event_id_without_gaps_or_repeats(
    svc: RunningService, clinic: Clinic
) -> None:
    clinic.patient("CUFF-1")
    token = svc.token("admin")
    with SSEClient(svc.base_url, token) as stream:
        clinic.post("CUFF-1", reading("systolic_bp", 190, ago(minutes=3)))
        opened = stream.next()
    alert_id = opened.data["alert"]["id"]
    # while nobody listens
    clinic.http.post(f"/v1/alerts/{alert_id}/acknowledge")
    clinic.post("CUFF-1", reading("blood_glucose", 40, ago(minutes=2)))
    clinic.http.post(f"/v1/alerts/{alert_id}/resolve", json={"note": "ok"})
    with SSEClient(svc.base_url, token, last_event_id=opened.id) as resumed:
        types = [resumed.next().data["type"] for _ in range(3)]
        assert types == ["acknowledged", "opened", "resolved"]
        resumed.assert_quiet(1.5)
    # the query parameter works too, for clients that cannot set headers
    with SSEClient(svc.base_url, token, params={"last_event_id": opened.id}) as resumed:
        assert resumed.next().data["type"] == "acknowledged"
    # a stream opened without an id starts with what happens next
    with SSEClient(svc.base_url, token) as fresh:
        fresh.assert_quiet(1.5)


def test_heartbeat_keeps_an_idle_stream_alive(svc: RunningService, clinic: Clinic) -> None:
    with SSEClient(svc.base_url, svc.token("admin")) as stream:
        deadline = time.monotonic() + 15
        while not any(c.startswith("ping") for c in stream.comments):
            assert time.monotonic() < deadline, stream.comments
            time.sleep(0.1)


def test_clinicians_stream_only_their_clinic(svc: RunningService, clinic: Clinic) -> None:
    assert clinic.http.post("/v1/clinics", json={"id": "north", "name": "North"}).status_code == 201
    clinic.patient("CUFF-1", "MRN-1", clinic="default")
    north_patient = clinic.patient("CUFF-2", "MRN-2", clinic="north")
    with (
        SSEClient(svc.base_url, svc.token("clinician", clinic="north")) as north,
        SSEClient(svc.base_url, svc.token("clinician", clinic="default")) as south,
    ):
        clinic.post("CUFF-1", reading("systolic_bp", 190, ago(minutes=2)))
        clinic.post("CUFF-2", reading("systolic_bp", 191, ago(minutes=2)))
        assert north.next().data["alert"]["patient_id"] == north_patient
        assert south.next().data["alert"]["value"] == 190
        north.assert_quiet(1.0)
        south.assert_quiet(0.5)
    # resuming from the start replays only the clinic's own history
    with SSEClient(svc.base_url, svc.token("clinician", clinic="north"), last_event_id="0") as replay:
        assert replay.next().data["alert"]["patient_id"] == north_patient
        replay.assert_quiet(1.0)


def test_stream_filters(svc: RunningService, clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    with SSEClient(svc.base_url, svc.token("admin"), params={"severity": "critical", "patient_id": pid}) as s:
        clinic.post("CUFF-1", reading("systolic_bp", 170, ago(minutes=2)))  # warning
        clinic.post("CUFF-1", reading("blood_glucose", 40, ago(minutes=1)))  # critical
        assert s.next().data["alert"]["metric"] == "blood_glucose"
        s.assert_quiet(1.0)


def test_an_alert_written_by_another_ingest_path_reaches_the_stream(
    svc: RunningService, clinic: Clinic, db_url: str
) -> None:
    """A second writer (its own pool, pipeline and engine, as another process would have) stores a
    reading straight into the database; the service's stream still delivers the alert."""
    from ingest.db.pool import open_pool
    from ingest.store.readings import prepare_session

    clinic.patient("CUFF-1")
    other = open_pool(db_url, min_size=1, max_size=1, name="other-process", prepare=prepare_session)
    try:
        engine = AlertEngine(catalogue=svc.services.pipeline.catalogue, origin="elsewhere")
        pipeline = Pipeline(hooks=[engine])
        with SSEClient(svc.base_url, svc.token("admin")) as stream:
            body = b'{"metric": "spo2", "value": 80, "unit": "%%", "measured_at": "%s"}' % (
                ago(minutes=1).isoformat().encode()
            )
            with other.connection() as conn, conn.transaction():
                [outcome] = pipeline.process(
                    conn, [Envelope("mqtt", body, utc_now(), device_id="CUFF-1", topic="x/CUFF-1/readings")],
                    collect=[],
                )
            assert outcome.accepted == 1, outcome
            event = stream.next()
            assert event.data["alert"]["metric"] == "spo2" and event.data["type"] == "opened"
    finally:
        other.close()


def test_bad_last_event_ids_are_refused(svc: RunningService) -> None:
    with svc.client(svc.token("admin")) as http:
        for value in ("abc", "-1", "1" * 30, "1.5"):
            r = http.get("/v1/alerts/stream", headers={"Last-Event-ID": value})
            assert r.status_code == 422, (value, r.text)
        assert http.get("/v1/alerts/stream", params={"last_event_id": "x"}).status_code == 422
        assert http.get("/v1/alerts/stream", params={"severity": "loud"}).status_code == 422
    with svc.client() as anonymous:
        assert anonymous.get("/v1/alerts/stream").status_code == 401
