"""The SMART launch against the EHR and the database: :meth:`SmartLaunch.begin` for
``/smart/launch``, :meth:`SmartLaunch.complete` for ``/smart/callback``.

The OAuth 2 client (authorization URL with PKCE ``S256``, code exchange with
``client_secret_basic`` or as a public client) is authlib's; the id token is checked with PyJWT
(:mod:`ingest.smart.idtoken`). Every refusal is a :class:`~ingest.smart.errors.SmartError`.
"""

from __future__ import annotations

import hmac
import logging
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import httpx
import psycopg
from authlib.integrations.base_client.errors import OAuthError  # type: ignore[import-untyped]

with warnings.catch_warnings():
    # authlib 1.9 warns on import that it would rather use the httpx2 package; httpx (which the
    # service uses everywhere) is what it falls back to, and it works with it. Without this the
    # warning is printed whenever the service starts.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]

from ingest.services import Services
from ingest.smart.discovery import Discovery, SmartConfiguration
from ingest.smart.errors import (
    AuthorizationFailed,
    ContextRefused,
    LaunchRefused,
    StateRefused,
    UnknownPatient,
)
from ingest.smart.idtoken import UnknownSigningKey, validate_id_token
from ingest.smart.issuers import normalise_issuer
from ingest.smart.launch import (
    digest,
    new_secrets,
    redirect_uri,
    scopes_for,
    valid_launch_parameter,
)
from ingest.smart.store import clinic_exists, patients_with_fhir_id, save_launch, take_launch
from ingest.store.sessions import NewSession, create_session
from ingest.store.tokens import Principal

logger = logging.getLogger(__name__)

FHIR_ID_RE: Final = re.compile(r"^[A-Za-z0-9.-]{1,64}$")
MAX_STATE_LENGTH: Final = 200
MAX_CODE_LENGTH: Final = 4096
MAX_FHIR_USER_LENGTH: Final = 1000


@dataclass(frozen=True, slots=True)
class Started:
    authorize_url: str
    browser: str  # the browser-binding cookie's value


@dataclass(frozen=True, slots=True)
class Opened:
    """A launch that ended in a session on one patient's page."""

    session: NewSession
    principal: Principal
    patient_id: UUID
    issuer: str
    standalone: bool


#: Called in the transaction that opens the session (the route writes its audit row there).
OnOpen = Callable[[psycopg.Connection[Any], Opened], None]


class SmartLaunch:
    def __init__(self, services: Services, discovery: Discovery) -> None:
        self._services = services
        self._discovery = discovery

    # --- /smart/launch ------------------------------------------------------------------------

    def begin(self, iss: str | None, launch: str | None, browser: str | None) -> Started:
        """Check the launch request against the allow-list, keep its secrets, and build the
        authorization URL. Nothing is fetched from an ``iss`` that is not allowed."""
        settings = self._services.settings
        if not settings.smart_issuers or settings.smart_client_id is None or settings.public_url is None:
            raise LaunchRefused("SMART app launch is not configured on this service (RPM_SMART_ISSUERS)")
        if not iss:
            raise LaunchRefused("the launch names no EHR (the iss parameter is missing)")
        issuer = normalise_issuer(iss)
        clinic = None if issuer is None else settings.smart_issuers.get(issuer)
        if issuer is None or clinic is None:
            raise LaunchRefused(f"the EHR {iss[:200]!r} (iss) is not one this service is registered with")
        if launch is not None and not valid_launch_parameter(launch):
            raise LaunchRefused("the launch parameter is empty, too long or not printable ASCII")
        with self._services.transaction() as conn:
            if not clinic_exists(conn, clinic):
                raise LaunchRefused(f"the clinic {clinic!r} this EHR is mapped to does not exist here")
        config = self._discovery.smart_configuration(issuer)
        secrets = new_secrets(browser)
        with self._services.transaction() as conn:
            save_launch(
                conn,
                secrets,
                issuer=issuer,
                clinic_id=clinic,
                launch=launch,
                ttl_s=settings.smart_launch_ttl_s,
            )
        extra = {"launch": launch} if launch is not None else {}
        with self._client() as client:
            url, _ = client.create_authorization_url(
                config.authorization_endpoint,
                state=secrets.state,
                code_verifier=secrets.code_verifier,
                scope=scopes_for(launch),
                nonce=secrets.nonce,
                aud=iss,
                **extra,
            )
        return Started(authorize_url=url, browser=secrets.browser)

    # --- /smart/callback ----------------------------------------------------------------------

    def complete(self, params: Mapping[str, str], browser: str | None, on_open: OnOpen) -> Opened:
        """Take the launch back by its state (once), exchange the code, validate the id token,
        find the patient of the context in the issuer's clinic and open a session there."""
        state = params.get("state")
        if not state:
            raise StateRefused("the EHR's answer carries no state")
        pending = None
        if len(state) <= MAX_STATE_LENGTH:
            with self._services.transaction() as conn:
                pending = take_launch(conn, state)
        if pending is None:
            raise StateRefused("the state is unknown or was already used: start again from the EHR")
        if pending.expired:
            raise StateRefused("this launch took too long and expired: start again from the EHR")
        if browser is None or not hmac.compare_digest(digest(browser), pending.browser_hash):
            raise StateRefused("this launch was started in another browser")
        error = params.get("error")
        if error:
            description = params.get("error_description", "")
            raise AuthorizationFailed(
                f"the EHR refused the sign-in: {error[:100]} {description[:300]}".strip()
            )
        code = params.get("code")
        if not code or len(code) > MAX_CODE_LENGTH:
            raise AuthorizationFailed("the EHR's answer carries no authorization code")

        config = self._discovery.smart_configuration(pending.issuer)
        token = self._exchange(config, code, pending.code_verifier)
        claims = self._id_token(token, config, pending.nonce)
        fhir_user = claims.get("fhirUser", claims.get("profile"))
        if not isinstance(fhir_user, str) or not 0 < len(fhir_user) <= MAX_FHIR_USER_LENGTH:
            raise ContextRefused("the id token names no user (fhirUser)")
        patient = token.get("patient")
        if not isinstance(patient, str) or not patient:
            raise ContextRefused("the EHR gave no patient context")
        if not FHIR_ID_RE.match(patient):
            raise ContextRefused("the EHR's patient context is not a FHIR id")

        settings = self._services.settings
        with self._services.transaction() as conn:
            found = patients_with_fhir_id(conn, pending.clinic_id, patient)
            if not found:
                raise UnknownPatient(
                    f"the EHR's patient (Patient/{patient}) is not enrolled in remote monitoring at"
                    f" clinic {pending.clinic_id}, or not linked to the EHR yet"
                )
            if len(found) > 1:
                raise ContextRefused(
                    f"several patients of clinic {pending.clinic_id} are linked to Patient/{patient}:"
                    " the clinic's administrator must fix the link"
                )
            session = create_session(
                conn,
                clinic_id=pending.clinic_id,
                fhir_user=fhir_user,
                issuer=pending.issuer,
                ttl_s=settings.smart_session_ttl_s,
            )
            principal = Principal(
                token_id=session.id,
                name=fhir_user,
                role="clinician",
                clinic_id=pending.clinic_id,
                device_id=None,
                session=True,
            )
            opened = Opened(
                session=session,
                principal=principal,
                patient_id=found[0],
                issuer=pending.issuer,
                standalone=pending.launch is None,
            )
            on_open(conn, opened)
        logger.info("SMART launch opened a session for clinic %s", pending.clinic_id)
        return opened

    def _client(self) -> OAuth2Client:
        settings = self._services.settings
        secret = settings.smart_client_secret
        assert settings.public_url is not None
        return OAuth2Client(
            client_id=settings.smart_client_id,
            client_secret=None if secret is None else secret.get_secret_value(),
            token_endpoint_auth_method="none" if secret is None else "client_secret_basic",
            redirect_uri=redirect_uri(settings.public_url),
            code_challenge_method="S256",
            timeout=settings.smart_timeout_s,
            follow_redirects=False,
        )

    def _exchange(self, config: SmartConfiguration, code: str, verifier: str) -> dict[str, Any]:
        try:
            with self._client() as client:
                token = client.fetch_token(
                    config.token_endpoint, grant_type="authorization_code", code=code, code_verifier=verifier
                )
        except OAuthError as exc:
            raise AuthorizationFailed(f"the EHR refused the code exchange ({str(exc.error)[:100]})") from None
        except httpx.HTTPStatusError as exc:
            raise AuthorizationFailed(
                f"the EHR's token endpoint answered {exc.response.status_code}"
            ) from None
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthorizationFailed(
                f"the code exchange with the EHR failed ({type(exc).__name__})"
            ) from None
        if not isinstance(token, Mapping) or not isinstance(token.get("access_token"), str):
            raise AuthorizationFailed("the EHR's token endpoint answered without an access token")
        return dict(token)

    def _id_token(self, token: Mapping[str, Any], config: SmartConfiguration, nonce: str) -> dict[str, Any]:
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise AuthorizationFailed("the EHR returned no id token (openid not granted?)")
        settings = self._services.settings
        assert settings.smart_client_id is not None
        openid = self._discovery.openid_configuration(config.issuer)
        check = {"issuer": openid.issuer, "client_id": settings.smart_client_id, "nonce": nonce}
        try:
            return validate_id_token(id_token, jwks=self._discovery.jwks(openid.jwks_uri), **check)
        except UnknownSigningKey:  # the EHR may have rotated its keys since they were read
            return validate_id_token(
                id_token, jwks=self._discovery.jwks(openid.jwks_uri, fresh=True), **check
            )
