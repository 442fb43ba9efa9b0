"""SMART on FHIR app launch against a real local SMART authorization server (contract
ehr-interop.md §3): EHR and standalone launch, public and confidential client, the session it
opens, and every refusal (unknown iss, state, code, id token, patient context)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import psycopg
import pytest

from tests.support.service import RunningService
from tests.support.smart_server import CLIENT_ID, SmartTestServer, s256

SCOPES = "launch openid fhirUser patient/Patient.read patient/Observation.read"
STANDALONE_SCOPES = "launch/patient openid fhirUser patient/Patient.read patient/Observation.read"


def enrol(app: RunningService, fhir_id: str | None, clinic: str = "north", name: str = "Ada North") -> str:
    with app.client(app.token("admin")) as admin:
        r = admin.post(
            "/v1/patients",
            json={
                "mrn": f"M-{fhir_id}-{clinic}",
                "display_name": name,
                "clinic": clinic,
                "fhir_patient_id": fhir_id,
            },
        )
    assert r.status_code == 201, r.text
    patient_id: str = r.json()["id"]
    return patient_id


def start(browser: httpx.Client, smart: SmartTestServer, launch: str | None) -> httpx.Response:
    params = {"iss": smart.fhir_base, **({"launch": launch} if launch is not None else {})}
    return browser.get("/smart/launch", params=params)


def authorize(location: str) -> str:
    """Follow the redirect to the EHR's authorization endpoint; the callback URL it answers with."""
    answer = httpx.get(location, timeout=30)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def launch_to_callback(browser: httpx.Client, smart: SmartTestServer, launch: str | None) -> str:
    started = start(browser, smart, launch)
    assert started.status_code == 302, started.text
    return authorize(started.headers["location"])


def ehr_launch(
    app: RunningService, smart: SmartTestServer, patient: str = "pat-1"
) -> tuple[httpx.Client, httpx.Response]:
    browser = app.client()
    callback = launch_to_callback(browser, smart, smart.new_launch(patient))
    return browser, browser.get(callback)


def cookies_of(response: httpx.Response) -> dict[str, str]:
    """Set-Cookie headers by cookie name (the whole header, attributes included)."""
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


def refused(response: httpx.Response, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert "rpm_session" not in response.headers.get("set-cookie", "")
    assert re.search(reason, response.text, re.IGNORECASE), response.text


def audit_rows(app: RunningService, route: str) -> list[dict[str, Any]]:
    with app.services.transaction() as conn:
        cur = conn.execute(
            "SELECT actor_name, actor_role, actor_clinic, status, patient_id::text, resource, query, token_id"
            " FROM audit_log WHERE route = %s ORDER BY id",
            (route,),
        )
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


# --- the happy paths ----------------------------------------------------------------------------


def test_ehr_launch_opens_a_clinic_session_on_the_patients_page(
    app: RunningService, smart: SmartTestServer
) -> None:
    patient = enrol(app, "pat-1")
    elsewhere = enrol(app, "pat-1", clinic="default", name="Same EHR id, other clinic")
    browser = app.client()
    launch = smart.new_launch("pat-1")
    started = start(browser, smart, launch)
    assert started.status_code == 302
    url = urlsplit(started.headers["location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{smart.issuer}/authorize"
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID
    assert q["redirect_uri"] == f"{app.base_url}/smart/callback"
    assert q["scope"] == SCOPES and q["launch"] == launch and q["aud"] == smart.fhir_base
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert len(q["state"]) >= 43 and len(q["nonce"]) >= 43
    binding = cookies_of(started)["rpm_smart_browser"]
    assert "HttpOnly" in binding and "Path=/smart;" in binding and "samesite=lax" in binding.lower()

    answer = browser.get(authorize(started.headers["location"]))
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/dashboard/#/patients/{patient}"
    cookies = cookies_of(answer)
    session, csrf = cookies["rpm_session"], cookies["rpm_csrf"]
    assert "HttpOnly" in session and "samesite=lax" in session.lower() and "Path=/" in session
    assert "Secure" not in session  # plain http here; see the https test below
    assert "HttpOnly" not in csrf and "samesite=strict" in csrf.lower()
    assert "Max-Age=28800" in session

    # The public client sent its id and the PKCE verifier of the challenge, and no secret.
    [token_request] = smart.token_requests
    assert token_request["client_id"] == CLIENT_ID and token_request["authorization"] == ""
    assert s256(token_request["code_verifier"]) == q["code_challenge"]

    # The session is a clinician of the issuer's clinic, named by the EHR's fhirUser.
    me = browser.get("/v1/dashboard/me")
    assert me.status_code == 200, me.text
    fhir_user = f"{smart.fhir_base}/Practitioner/test-clinician"
    assert me.json() == {"name": fhir_user, "role": "clinician", "clinic": "north"}
    listed = browser.get("/v1/dashboard/patients").json()["patients"]
    assert [p["id"] for p in listed] == [patient]
    assert browser.get(f"/v1/dashboard/patients/{patient}").status_code == 200
    assert browser.get(f"/v1/dashboard/patients/{elsewhere}").status_code == 404

    # fhirUser is in the audit log: the launch itself (with the patient) and every later call.
    [opened] = audit_rows(app, "/smart/callback")
    assert opened["actor_name"] == fhir_user and opened["actor_clinic"] == "north"
    assert opened["status"] == 303 and opened["patient_id"] == patient
    assert opened["resource"] == {"iss": smart.fhir_base, "fhir_user": fhir_user, "launch": "ehr"}
    assert opened["query"] is None  # never the code or the state
    [me_row] = audit_rows(app, "/v1/dashboard/me")
    assert me_row["actor_name"] == fhir_user and me_row["token_id"] == opened["token_id"]


def test_standalone_launch_asks_for_a_patient_and_lands_on_their_page(
    app: RunningService, smart: SmartTestServer
) -> None:
    patient = enrol(app, "pat-7")
    smart.standalone_patient = "pat-7"
    browser = app.client()
    started = start(browser, smart, None)
    q = parse_qs(urlsplit(started.headers["location"]).query)
    assert q["scope"] == [STANDALONE_SCOPES] and "launch" not in q
    answer = browser.get(authorize(started.headers["location"]))
    assert answer.status_code == 303 and answer.headers["location"] == f"/dashboard/#/patients/{patient}"
    assert audit_rows(app, "/smart/callback")[0]["resource"]["launch"] == "standalone"


def test_confidential_client_authenticates_with_client_secret_basic(
    confidential_app: RunningService, smart: SmartTestServer
) -> None:
    patient = enrol(confidential_app, "pat-1")
    browser, answer = ehr_launch(confidential_app, smart)
    assert answer.status_code == 303 and answer.headers["location"].endswith(patient)
    [token_request] = smart.token_requests
    assert token_request["authorization"].startswith("Basic ")
    assert "client_secret" not in token_request and token_request["code_verifier"]


def test_two_launches_in_two_tabs_of_one_browser_both_work(
    app: RunningService, smart: SmartTestServer
) -> None:
    enrol(app, "pat-1")
    enrol(app, "pat-2", name="Bo North")
    browser = app.client()
    first = launch_to_callback(browser, smart, smart.new_launch("pat-1"))
    second = launch_to_callback(browser, smart, smart.new_launch("pat-2"))
    assert browser.get(second).status_code == 303
    assert browser.get(first).status_code == 303


# --- the launch request -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"iss": ""},
        {"iss": "javascript:alert(1)"},
        {"iss": "https://evil.example/fhir"},
        {"iss": "//evil.example/fhir"},
    ],
)
def test_a_launch_without_a_configured_iss_is_refused_without_redirect(
    app: RunningService, smart: SmartTestServer, query: dict[str, str]
) -> None:
    with app.client() as browser:
        refused(browser.get("/smart/launch", params=query), 400, "iss")
    assert smart.requests == []


def test_an_unconfigured_ehr_is_never_contacted_nor_redirected_to(
    app: RunningService, smart: SmartTestServer, stranger: SmartTestServer
) -> None:
    with app.client() as browser:
        answer = browser.get("/smart/launch", params={"iss": stranger.fhir_base, "launch": "x"})
        refused(answer, 400, "not one this service is registered with")
        # A look-alike of the configured issuer (credentials, query, another path) is not it either.
        host = urlsplit(smart.fhir_base).netloc
        for iss in (
            f"http://user@{host}/fhir",
            f"{smart.fhir_base}?x=1",
            f"{smart.fhir_base}/sub",
            f"{smart.fhir_base}#f",
        ):
            refused(browser.get("/smart/launch", params={"iss": iss}), 400, "iss")
    assert stranger.requests == [] and smart.requests == []
    refusals = audit_rows(app, "/smart/launch")
    assert len(refusals) == 5 and {r["status"] for r in refusals} == {400}
    assert stranger.fhir_base in refusals[0]["resource"]["refused"] and refusals[0]["query"] is None


def test_markup_in_the_iss_is_shown_as_text(app: RunningService) -> None:
    with app.client() as browser:
        answer = browser.get("/smart/launch", params={"iss": "<script>alert('x')</script>"})
    refused(answer, 400, "&lt;script&gt;")
    assert "<script>" not in answer.text


def test_a_repeated_or_malformed_parameter_is_refused(app: RunningService, smart: SmartTestServer) -> None:
    with app.client() as browser:
        twice = browser.get(
            f"/smart/launch?{urlencode([('iss', smart.fhir_base), ('iss', smart.fhir_base)])}"
        )
        refused(twice, 400, "more than once")
        refused(browser.get("/smart/launch", params={"iss": smart.fhir_base, "launch": "a b"}), 400, "launch")
        refused(
            browser.get("/smart/launch", params={"iss": smart.fhir_base, "launch": "x" * 2001}), 400, "launch"
        )
    assert smart.requests == []


def test_launch_is_refused_when_smart_is_not_configured(settings: Any) -> None:
    from ingest.smart.component import smart_component
    from tests.support.service import running_service

    with running_service(settings, factories=[smart_component]) as svc, svc.client() as browser:
        refused(
            browser.get("/smart/launch", params={"iss": "https://ehr.example/fhir"}), 400, "not configured"
        )


def test_session_cookies_are_secure_behind_tls(settings: Any, smart: SmartTestServer) -> None:
    from ingest.smart.component import smart_component
    from tests.support.service import running_service
    from tests.support.smart_server import add_clinic, smart_settings

    assert settings.database_url is not None
    add_clinic(settings.database_url, "north")
    configured = smart_settings(settings, smart, "https://rpm.example")
    with running_service(configured, factories=[smart_component]) as svc, svc.client() as browser:
        started = start(browser, smart, "x")
    assert started.status_code == 302
    assert "Secure" in cookies_of(started)["rpm_smart_browser"]
    assert parse_qs(urlsplit(started.headers["location"]).query)["redirect_uri"] == [
        "https://rpm.example/smart/callback"
    ]


@pytest.mark.parametrize(
    ("misbehaviour", "reason"),
    [
        ("discovery_500", "answered 500"),
        ("discovery_garbage", "not JSON"),
        ("discovery_huge", "larger than"),
        ("discovery_redirect", "answered 302"),
    ],
)
def test_an_ehr_whose_discovery_fails_gets_a_page_not_a_redirect(
    app: RunningService, smart: SmartTestServer, misbehaviour: str, reason: str
) -> None:
    smart.misbehave.add(misbehaviour)
    with app.client() as browser:
        refused(start(browser, smart, smart.new_launch("pat-1")), 502, reason)
    assert "GET /auth/authorize" not in smart.requests


# --- the callback: state --------------------------------------------------------------------------


def test_a_replayed_callback_is_refused(app: RunningService, smart: SmartTestServer) -> None:
    enrol(app, "pat-1")
    browser = app.client()
    callback = launch_to_callback(browser, smart, smart.new_launch("pat-1"))
    assert browser.get(callback).status_code == 303
    browser.cookies.delete("rpm_session")
    refused(browser.get(callback), 400, "already used")
    refusals = [r for r in audit_rows(app, "/smart/callback") if r["status"] == 400]
    assert refusals and "already used" in refusals[0]["resource"]["refused"] and refusals[0]["query"] is None


def test_a_tampered_missing_or_oversized_state_is_refused(
    app: RunningService, smart: SmartTestServer
) -> None:
    enrol(app, "pat-1")
    browser = app.client()
    callback = launch_to_callback(browser, smart, smart.new_launch("pat-1"))
    parts = urlsplit(callback)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    tampered = {**q, "state": q["state"][:-2] + ("AA" if not q["state"].endswith("AA") else "BB")}
    refused(browser.get("/smart/callback", params=tampered), 400, "state")
    refused(browser.get("/smart/callback", params={"code": q["code"]}), 400, "no state")
    refused(browser.get("/smart/callback", params={**q, "state": "x" * 5000}), 400, "state")
    # The genuine state still works once: a wrong guess does not burn it.
    assert browser.get(callback).status_code == 303


def test_a_callback_in_another_browser_is_refused(app: RunningService, smart: SmartTestServer) -> None:
    enrol(app, "pat-1")
    callback = launch_to_callback(app.client(), smart, smart.new_launch("pat-1"))
    with app.client() as other_browser:  # an attacker's link opened by a victim: no binding cookie
        refused(other_browser.get(callback), 400, "another browser")


def test_an_expired_launch_is_refused(app: RunningService, smart: SmartTestServer) -> None:
    enrol(app, "pat-1")
    browser = app.client()
    callback = launch_to_callback(browser, smart, smart.new_launch("pat-1"))
    with app.services.transaction() as conn:
        conn.execute("UPDATE smart_launches SET expires_at = now() - interval '1 second'")
    refused(browser.get(callback), 400, "expired")


# --- the callback: code and id token ----------------------------------------------------------


def test_a_replayed_code_is_refused(app: RunningService, smart: SmartTestServer) -> None:
    enrol(app, "pat-1")
    browser = app.client()
    used = launch_to_callback(browser, smart, smart.new_launch("pat-1"))
    assert browser.get(used).status_code == 303
    fresh = launch_to_callback(browser, smart, smart.new_launch("pat-1"))
    old_code = parse_qs(urlsplit(used).query)["code"][0]
    state = parse_qs(urlsplit(fresh).query)["state"][0]
    refused(browser.get("/smart/callback", params={"code": old_code, "state": state}), 401, "code exchange")


@pytest.mark.parametrize(
    ("misbehaviour", "reason"),
    [
        ("wrong_key", "signature does not verify"),
        ("unknown_kid", "key the EHR does not publish"),
        ("wrong_aud", "another application"),
        ("wrong_issuer", "another issuer"),
        ("expired", "expired"),
        ("wrong_nonce", "nonce"),
        ("token_500", "answered 500"),
        ("deny", "refused the sign-in: access_denied The user &lt;b&gt;declined&lt;/b&gt;"),
    ],
)
def test_an_invalid_sign_in_is_refused(
    app: RunningService, smart: SmartTestServer, misbehaviour: str, reason: str
) -> None:
    enrol(app, "pat-1")
    smart.misbehave.add(misbehaviour)
    browser, answer = ehr_launch(app, smart)
    refused(answer, 401, reason)
    assert browser.get("/v1/dashboard/me").status_code == 401
    with app.services.transaction() as conn:
        assert conn.execute("SELECT count(*) FROM web_sessions").fetchone() == (0,)


@pytest.mark.parametrize(
    ("misbehaviour", "reason"), [("no_fhir_user", "names no user"), ("no_patient", "no patient context")]
)
def test_a_sign_in_without_user_or_patient_context_is_refused(
    app: RunningService, smart: SmartTestServer, misbehaviour: str, reason: str
) -> None:
    enrol(app, "pat-1")
    smart.misbehave.add(misbehaviour)
    _, answer = ehr_launch(app, smart)
    refused(answer, 403, reason)


def test_a_patient_the_service_does_not_know_gets_a_page_saying_so(
    app: RunningService, smart: SmartTestServer
) -> None:
    enrol(app, "pat-1", clinic="default")  # linked, but in another clinic than the issuer's
    _, answer = ehr_launch(app, smart, patient="pat-1")
    refused(answer, 404, "not enrolled in remote monitoring")
    _, answer = ehr_launch(app, smart, patient="nobody-here")
    refused(answer, 404, "Patient/nobody-here")


# --- the session ----------------------------------------------------------------------------------


def test_state_changing_calls_with_the_cookie_need_the_csrf_token(
    app: RunningService, smart: SmartTestServer
) -> None:
    enrol(app, "pat-1")
    browser, answer = ehr_launch(app, smart)
    assert answer.status_code == 303
    csrf = browser.cookies["rpm_csrf"]
    body = {"mrn": "X-1", "display_name": "Forged", "clinic": "north"}
    forged = browser.post("/v1/patients", json=body)
    assert forged.status_code == 403 and "X-CSRF-Token" in forged.json()["detail"]
    wrong = browser.post("/v1/patients", json=body, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403 and "does not belong" in wrong.json()["detail"]
    cross = browser.post(
        "/v1/patients", json=body, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    )
    assert cross.status_code == 403 and "cross-site" in cross.json()["detail"]
    # With the token (and our own origin) the call goes through to the usual role checks.
    ok = browser.post("/v1/patients", json=body, headers={"X-CSRF-Token": csrf, "Origin": app.base_url})
    assert ok.status_code == 201, ok.text
    assert ok.json()["clinic"] == "north"
    # Sign out: CSRF-checked too; afterwards the cookie opens nothing.
    assert browser.post("/smart/logout").status_code == 403
    out = browser.post("/smart/logout", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 204
    assert 'rpm_session=""' in out.headers.get("set-cookie", "") or "Max-Age=0" in out.headers.get(
        "set-cookie", ""
    )
    with app.client(cookies={"rpm_session": answer.cookies["rpm_session"]}) as replay:
        assert replay.get("/v1/dashboard/me").status_code == 401


def test_sessions_expire(app: RunningService, smart: SmartTestServer) -> None:
    enrol(app, "pat-1")
    browser, _ = ehr_launch(app, smart)
    assert browser.get("/v1/dashboard/me").status_code == 200
    with app.services.transaction() as conn:
        conn.execute("UPDATE web_sessions SET expires_at = now() - interval '1 second'")
    expired = browser.get("/v1/dashboard/me")
    assert expired.status_code == 401 and "session expired" in expired.json()["detail"]


def test_a_bearer_token_is_used_before_the_cookie_and_a_session_is_no_bearer_token(
    app: RunningService, smart: SmartTestServer
) -> None:
    enrol(app, "pat-1")
    browser, _ = ehr_launch(app, smart)
    admin = app.token("admin", name="Ops")
    me = browser.get("/v1/dashboard/me", headers={"Authorization": f"Bearer {admin}"})
    assert me.json()["name"] == "Ops"
    secret = browser.cookies["rpm_session"]
    with app.client(secret) as as_bearer:
        assert as_bearer.get("/v1/dashboard/me").status_code == 401
    for forged in ("rpms_" + "x" * 43, "rpm_" + "x" * 300, admin):
        with app.client(cookies={"rpm_session": forged}) as anonymous:
            assert anonymous.get("/v1/dashboard/me").status_code == 401


def test_the_database_keeps_only_digests_of_the_secrets(app: RunningService, smart: SmartTestServer) -> None:
    enrol(app, "pat-1")
    browser, _ = ehr_launch(app, smart)
    secret, csrf = browser.cookies["rpm_session"], browser.cookies["rpm_csrf"]
    with psycopg.connect(app.runtime.database_url or "") as conn:
        dump = str(conn.execute("SELECT * FROM web_sessions").fetchall())
    assert secret not in dump and csrf not in dump
