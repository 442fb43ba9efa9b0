"""``/smart/launch``, ``/smart/callback`` and ``/smart/logout``.

A refused launch answers with a page naming the reason (:mod:`ingest.smart.pages`), never with a
redirect: an ``iss`` that is not allowed is never redirected to. A successful callback sets the
session cookies and sends the browser to the patient's page of the dashboard. The callback's
audit row (with the EHR user, ``fhirUser``) commits with the session it opens; refused launches
and callbacks are audited too, with their reason. Neither row keeps the query string (it holds the
authorization code and the state).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Final
from uuid import UUID

import psycopg
from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse
from psycopg_pool import PoolTimeout

from ingest.api.deps import PrincipalDep, ServicesDep
from ingest.security import audit_log
from ingest.security.audit import REQUEST_ID_STATE_KEY, mark_written, note_patient, route_event
from ingest.security.audit_store import AuditEvent
from ingest.security.sessions import clear_session_cookies, set_session_cookies
from ingest.services import Services
from ingest.settings import Settings
from ingest.smart.errors import LaunchRefused, SmartError, StateRefused
from ingest.smart.flow import Opened, SmartLaunch
from ingest.smart.launch import BROWSER_COOKIE, CALLBACK_PATH, LAUNCH_PATH
from ingest.smart.pages import refusal_page
from ingest.store.sessions import revoke_session

logger = logging.getLogger(__name__)

SINGLE_VALUED: Final = ("iss", "launch", "state", "code", "error", "error_description")


def secure_cookies(settings: Settings, request: Request) -> bool:
    """Cookies are ``Secure`` whenever the service is reached over TLS."""
    return (settings.public_url or "").startswith("https://") or request.url.scheme == "https"


def _query(request: Request, refusal: type[SmartError]) -> dict[str, str]:
    params = request.query_params
    for name in SINGLE_VALUED:
        if len(params.getlist(name)) > 1:
            raise refusal(f"the parameter {name!r} is given more than once")
    return dict(params)


def _refused(request: Request, services: Services, error: SmartError, route: str) -> Response:
    """The refusal page, after an audit row naming the reason (no caller is known, so the
    middleware would write none; the query string is not kept: it may hold a code or a state)."""
    log = audit_log(services)
    request_id = (request.scope.get("state") or {}).get(REQUEST_ID_STATE_KEY)
    if log is not None and isinstance(request_id, UUID):
        agent = request.headers.get("user-agent")
        event = AuditEvent(
            request_id=request_id,
            method=request.method,
            route=route,
            path=route,
            action="read",
            status=error.status,
            client_addr=request.client.host if request.client else None,
            user_agent=agent[:200] if agent else None,
            resource={"refused": error.reason[:500]},
        )
        try:
            log.write(event)
        except (psycopg.Error, PoolTimeout) as db_error:
            logger.warning("audit of a refused SMART launch failed (%s)", type(db_error).__name__)
    return refusal_page(error)


def build_router(flow: SmartLaunch) -> APIRouter:
    router = APIRouter(prefix="/smart", tags=["smart"], include_in_schema=False)

    @router.get("/launch")
    def launch(request: Request, services: ServicesDep) -> Response:
        """EHR launch (``iss`` and ``launch``) or standalone launch (``iss`` alone)."""
        try:
            params = _query(request, LaunchRefused)
            started = flow.begin(params.get("iss"), params.get("launch"), request.cookies.get(BROWSER_COOKIE))
        except SmartError as exc:
            return _refused(request, services, exc, LAUNCH_PATH)
        response = RedirectResponse(started.authorize_url, status_code=status.HTTP_302_FOUND)
        response.set_cookie(
            BROWSER_COOKIE,
            started.browser,
            max_age=services.settings.smart_launch_ttl_s,
            path="/smart",  # sent to the callback, and to the next launch (which reuses it)
            httponly=True,
            secure=secure_cookies(services.settings, request),
            samesite="lax",
        )
        return response

    @router.get("/callback")
    def callback(request: Request, services: ServicesDep) -> Response:
        """The EHR's answer: opens a clinician session on the launched patient's page."""
        log = audit_log(services)
        written: list[AuditEvent] = []

        def on_open(conn: psycopg.Connection[Any], opened: Opened) -> None:
            request.state.principal = opened.principal
            note_patient(request.state, opened.patient_id)
            event = route_event(request.scope, status.HTTP_303_SEE_OTHER)
            if event is None or log is None:
                return
            event = replace(
                event,
                query=None,
                resource={
                    "iss": opened.issuer[:500],
                    "fhir_user": opened.principal.name[:1000],
                    "launch": "standalone" if opened.standalone else "ehr",
                },
            )
            log.write_in(conn, event)
            written.append(event)

        try:
            params = _query(request, StateRefused)
            opened = flow.complete(params, request.cookies.get(BROWSER_COOKIE), on_open)
        except SmartError as exc:
            return _refused(request, services, exc, CALLBACK_PATH)
        for event in written:
            mark_written(request.scope, event.status)
            assert log is not None
            log.counted(event)
        secure = secure_cookies(services.settings, request)
        response = RedirectResponse(
            f"/dashboard/#/patients/{opened.patient_id}", status_code=status.HTTP_303_SEE_OTHER
        )
        set_session_cookies(
            response,
            secret=opened.session.secret,
            csrf_token=opened.session.csrf_token,
            max_age_s=services.settings.smart_session_ttl_s,
            secure=secure,
        )
        return response

    @router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
    def logout(request: Request, principal: PrincipalDep, services: ServicesDep) -> Response:
        """End the browser session (the dashboard's Sign out); CSRF-checked like every call."""
        if not principal.session:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "only a browser session can be signed out here")
        with services.transaction() as conn:
            revoke_session(conn, principal.token_id)
        response = Response(status_code=status.HTTP_204_NO_CONTENT)
        clear_session_cookies(response, secure=secure_cookies(services.settings, request))
        return response

    return router
