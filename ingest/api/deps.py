"""FastAPI dependencies: the injected services, the calling principal, role checks, and the
visibility checks routes of every feature share (another clinic's data answers 404)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ingest.services import Services
from ingest.store import roster
from ingest.store.tokens import Principal, Role, resolve_token

_bearer = HTTPBearer(auto_error=False, description="API token: rpm-ingest token create")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_principal(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
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
