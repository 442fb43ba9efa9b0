"""FastAPI dependencies: the injected services, the calling principal, role checks, the JSON body
check every route shares, and the visibility checks routes of every feature share (another
clinic's data answers 404)."""

from __future__ import annotations

import email.message
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ingest.security.sessions import SESSION_COOKIE, csrf_refusal, origin_of
from ingest.services import Services
from ingest.store import roster
from ingest.store.sessions import resolve_session
from ingest.store.tokens import Principal, Role, resolve_token

_bearer = HTTPBearer(auto_error=False, description="API token: rpm-ingest token create")


#: What a client sending a body in another format is told to do instead.
JSON_BODY_HINT: Final = "send the body as JSON with Content-Type: application/json"


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or ``application/*+json``, with or without parameters (``charset``)."""
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def require_json_body(request: Request) -> None:
    """Every request body of this API is JSON: refuse any other with 415 and say what to send.

    Applied to the whole application (``create_app``). A request without a body passes. A body
    without a Content-Type passes where the route reads it as JSON itself (``POST /v1/readings``);
    FastAPI would not read it for a route with a body model, so there it is refused too.
    """
    if not _has_body(request):
        return
    content_type = request.headers.get("content-type")
    if content_type is None:
        route = request.scope.get("route")
        if getattr(route, "body_field", None) is None:
            return
        got = "no Content-Type"
    elif is_json_media_type(content_type):
        return
    else:
        got = f"Content-Type {content_type[:100]!r}"
    raise HTTPException(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"this endpoint takes JSON ({got} given): {JSON_BODY_HINT}"
    )


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_principal(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller: a bearer token, or else the browser session cookie a SMART launch opened
    (a state-changing call with the cookie must pass the CSRF check, ingest.security.sessions)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if credentials is None and cookie is not None:
        return _session_principal(request, services, cookie)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with services.pipelined_transaction() as conn:
        principal = resolve_token(conn, credentials.credentials)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid, expired or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.principal = principal  # the audit trail records who called (ingest.security)
    return principal


def _session_principal(request: Request, services: Services, cookie: str) -> Principal:
    with services.pipelined_transaction() as conn:
        found = resolve_session(conn, cookie)
    if found is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "session expired or ended: open the dashboard from the EHR again",
            headers={"WWW-Authenticate": "Bearer"},
        )
    public = services.settings.public_url
    own = frozenset(o for o in (origin_of(str(request.base_url)), origin_of(public or "")) if o)
    refusal = csrf_refusal(request.method, request.headers, found.csrf_hash, own)
    if refusal is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, refusal)
    request.state.principal = found.principal  # the audit trail records who called
    return found.principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*roles: Role) -> object:
    """A dependency that admits only the given roles."""

    def check(principal: PrincipalDep) -> Principal:
        if principal.role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this call needs role {' or '.join(roles)}"
            )
        return principal

    return Depends(check)


StaffDep = Annotated[Principal, require("admin", "clinician")]
AdminDep = Annotated[Principal, require("admin")]


def ensure_clinic_visible(principal: Principal, clinic_id: str, what: str) -> None:
    """Hide other tenants' data: answer 404 as if it did not exist."""
    if not principal.can_see_clinic(clinic_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


def visible_patient(services: Services, principal: Principal, patient_id: UUID) -> dict[str, Any]:
    """The patient row, or 404 when it does not exist or belongs to another clinic."""
    with services.transaction() as conn:
        row = roster.get_patient(conn, patient_id)
    ensure_clinic_visible(principal, row["clinic_id"], f"patient {patient_id}")
    return row
