"""The FastAPI application: routers, error mapping and request limits. No global state."""

from __future__ import annotations

import logging
import math
from typing import Any

import psycopg
from fastapi import Depends, FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from ingest.api.deps import require_json_body
from ingest.api.docs import install_docs
from ingest.api.routes import audit, clinics, deadletters, devices, health, patients, readings
from ingest.errors import Conflict, NotFound
from ingest.security import install_security
from ingest.security.limits import BodyLimit
from ingest.services import Services

logger = logging.getLogger(__name__)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def create_app(services: Services, *, extra_routers: tuple[Any, ...] = ()) -> FastAPI:
    app = FastAPI(
        title="RPM ingest",
        version="0.1.0",
        description="Remote patient monitoring: readings in, alerts out, FHIR R4 export.",
        docs_url=None,  # served by install_docs, without a CDN
        redoc_url=None,
        dependencies=[Depends(require_json_body)],  # every body is JSON; anything else is a 415
    )
    app.state.services = services
    install_docs(app)
    for module in (health, clinics, patients, devices, readings, deadletters, audit):
        app.include_router(module.router)
    for router in extra_routers:
        app.include_router(router)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Same answer as FastAPI's own handler, but an echoed NaN or Infinity (which the JSON
        # parser accepts) no longer makes the error itself unserialisable (a 500 for bad input).
        return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        logger.warning("database unavailable: %s", type(exc).__name__)
        return JSONResponse(
            {"detail": "database unavailable, retry later"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(psycopg.errors.DataError)
    @app.exception_handler(psycopg.errors.IntegrityError)
    async def _bad_data(_: Request, exc: Exception) -> JSONResponse:
        diag = getattr(exc, "diag", None)
        reason = getattr(diag, "message_primary", None) or type(exc).__name__
        return JSONResponse({"detail": f"invalid data: {reason}"}, status_code=422)

    limits = services.limits
    # a body holding an ECG strip may be larger; the readings route refuses other large ones
    ecg_body = max(limits.body_bytes, limits.message.ecg_max_bytes)
    app.add_middleware(BodyLimit, limit=limits.body_bytes, wider={"/v1/readings": ecg_body})
    install_security(app, services)
    return app
