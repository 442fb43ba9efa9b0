"""A local SMART on FHIR authorization server (a real HTTP server on a loopback port) standing in
for an EHR's, with switches to misbehave.

It serves what an EHR serves to a launched app:

- ``GET /fhir/.well-known/smart-configuration`` (the FHIR base is the ``iss``) naming the OpenID
  issuer ``/auth``, whose ``GET /auth/.well-known/openid-configuration`` names the JWKS;
- ``GET /auth/authorize``: checks the client, its registered redirect URI, ``aud`` = the FHIR base,
  PKCE ``S256``, the scopes and (EHR launch) the ``launch`` value, records the request, and
  approves at once: a single-use code bound to the challenge, nonce, user and patient context;
- ``POST /auth/token``: client authentication (``client_secret_basic`` for a confidential client,
  ``client_id`` in the body for a public one), single-use codes, the PKCE verifier check, and an
  RS256 id token with ``fhirUser`` and ``nonce`` beside the ``patient`` context;
- ``GET /auth/jwks``: the public key;
- ``GET /ehr/launch?patient=&user=&app=``: the EHR side, a page with a link opening the app with
  ``iss`` and a fresh ``launch`` value (what a clinician clicks in the chart).

``misbehave`` switches: ``wrong_key`` (signed by another key under the published kid),
``unknown_kid``, ``wrong_aud``, ``wrong_issuer``, ``expired``, ``wrong_nonce``, ``no_fhir_user``,
``no_patient``, ``deny`` (the user refuses), ``token_500``; for the SMART configuration
``discovery_500``, ``discovery_garbage``, ``discovery_huge`` (over 512 KiB), ``discovery_redirect``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

KID = "smart-test-key-1"


@cache
def signing_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def other_key() -> RSAPrivateKey:
    """A key the server does not publish (tokens signed with it must be refused)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwks() -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key().public_key()))
    return {"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]}


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class Client:
    redirect_uris: set[str]
    secret: str | None = None


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    patient: str | None
    user: str
    scope: str


@dataclass
class SmartTestServer:
    origin: str
    clients: dict[str, Client] = field(default_factory=dict)
    launches: dict[str, tuple[str, str]] = field(default_factory=dict)  # launch -> (patient, user)
    codes: dict[str, Grant] = field(default_factory=dict)
    #: the patient the standalone "patient picker" selects, and the user signed in at the EHR
    standalone_patient: str | None = None
    user: str = "Practitioner/test-clinician"
    misbehave: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)  # every request: "METHOD /path"
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def fhir_base(self) -> str:
        return f"{self.origin}/fhir"

    @property
    def issuer(self) -> str:
        return f"{self.origin}/auth"

    def register(self, client_id: str, redirect_uri: str, secret: str | None = None) -> None:
        self.clients[client_id] = Client({redirect_uri}, secret)

    def new_launch(self, patient: str, user: str | None = None) -> str:
        launch = secrets.token_urlsafe(16)
        with self.lock:
            self.launches[launch] = (patient, user or self.user)
        return launch

    def ehr_page_url(self, app_launch_url: str, patient: str, user: str | None = None) -> str:
        query = {"patient": patient, "app": app_launch_url, **({"user": user} if user else {})}
        return f"{self.origin}/ehr/launch?{urlencode(query)}"

    # --- documents ----------------------------------------------------------------------------

    def smart_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "grant_types_supported": ["authorization_code"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
            "scopes_supported": ["openid", "fhirUser", "launch", "launch/patient", "patient/*.read"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": [
                "launch-ehr",
                "launch-standalone",
                "client-public",
                "client-confidential-symmetric",
                "context-ehr-patient",
                "context-standalone-patient",
                "sso-openid-connect",
                "permission-patient",
            ],
        }

    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": "https://another-issuer.example" if "wrong_issuer" in self.misbehave else self.issuer,
            "sub": grant.user.rsplit("/", 1)[-1],
            "aud": "another-app" if "wrong_aud" in self.misbehave else grant.client_id,
            "iat": now - 7200 if "expired" in self.misbehave else now,
            "exp": now - 3600 if "expired" in self.misbehave else now + 300,
            "nonce": "not-the-launch-nonce" if "wrong_nonce" in self.misbehave else grant.nonce,
        }
        if "no_fhir_user" not in self.misbehave:
            claims["fhirUser"] = (
                grant.user if grant.user.startswith("http") else f"{self.fhir_base}/{grant.user}"
            )
        key = other_key() if {"wrong_key", "unknown_kid"} & self.misbehave else signing_key()
        kid = "smart-test-key-2" if "unknown_kid" in self.misbehave else KID
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    # --- authorize ----------------------------------------------------------------------------

    def authorize(self, q: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """(status, headers, body) of the authorization endpoint."""
        self.authorize_requests.append(q)
        client = self.clients.get(q.get("client_id", ""))
        redirect = q.get("redirect_uri", "")
        if client is None or redirect not in client.redirect_uris:
            return 400, {}, "unknown client or unregistered redirect_uri"  # never redirect then

        def back(**params: str) -> tuple[int, dict[str, str], str]:
            if "state" in q:
                params["state"] = q["state"]
            return 302, {"Location": f"{redirect}?{urlencode(params)}"}, ""

        scopes = set(q.get("scope", "").split())
        if q.get("response_type") != "code":
            return back(error="unsupported_response_type")
        if q.get("aud") != self.fhir_base:
            return back(error="invalid_request", error_description="aud is not this FHIR server")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 required")
        if not {"openid", "fhirUser"} <= scopes:
            return back(error="invalid_scope", error_description="openid fhirUser required")
        if "deny" in self.misbehave:
            return back(error="access_denied", error_description="The user <b>declined</b>")
        patient: str | None
        if "launch" in scopes:
            with self.lock:
                context = self.launches.pop(q.get("launch", ""), None)
            if context is None:
                return back(error="invalid_request", error_description="unknown launch")
            patient, user = context
        elif "launch/patient" in scopes:
            patient, user = self.standalone_patient, self.user  # the patient picker's choice
        else:
            return back(error="invalid_scope", error_description="launch or launch/patient required")
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = Grant(
                client_id=q["client_id"],
                redirect_uri=redirect,
                challenge=q["code_challenge"],
                nonce=q.get("nonce"),
                patient=patient,
                user=user,
                scope=" ".join(sorted(scopes)),
            )
        return back(code=code)

    # --- token --------------------------------------------------------------------------------

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.token_requests.append({**form, "authorization": authorization or ""})
        if "token_500" in self.misbehave:
            return 500, {"error": "server_error"}
        client_id = form.get("client_id")
        if authorization and authorization.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
            except ValueError:
                return 401, {"error": "invalid_client"}
            client = self.clients.get(client_id)
            if client is None or client.secret is None or client.secret != secret:
                return 401, {"error": "invalid_client"}
        else:
            client = self.clients.get(client_id or "")
            if client is None or client.secret is not None:
                return 401, {"error": "invalid_client", "error_description": "client authentication required"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self.lock:
            grant = self.codes.pop(form.get("code", ""), None)  # single use
        if grant is None or grant.client_id != client_id:
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        if form.get("redirect_uri") != grant.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        if s256(form.get("code_verifier", "")) != grant.challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verifier does not match"}
        answer: dict[str, Any] = {
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": grant.scope,
            "id_token": self.id_token(grant),
        }
        if grant.patient is not None and "no_patient" not in self.misbehave:
            answer["patient"] = grant.patient
        return 200, answer

    def ehr_page(self, q: dict[str, str]) -> str:
        launch = self.new_launch(q["patient"], q.get("user"))
        target = f"{q['app']}?{urlencode({'iss': self.fhir_base, 'launch': launch})}"
        return (
            "<!doctype html><html lang='en'><head><title>EHR chart</title></head><body>"
            f"<h1>Chart of Patient/{html.escape(q['patient'])}</h1>"
            f"<a id='open-rpm' href='{html.escape(target)}'>Open remote monitoring</a></body></html>"
        )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: object) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802
        smart = self.server.smart
        parts = urlsplit(self.path)
        smart.requests.append(f"GET {parts.path}")
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/fhir/.well-known/smart-configuration":
            if "discovery_500" in smart.misbehave:
                self._send(500, b"<html>oops</html>", "text/html")
            elif "discovery_garbage" in smart.misbehave:
                self._send(200, b"\xff{not json", "application/json")
            elif "discovery_huge" in smart.misbehave:
                self._send(200, b"[" + b"0," * 400_000 + b"0]", "application/json")
            elif "discovery_redirect" in smart.misbehave:
                self._send(302, b"", "text/plain", {"Location": "https://evil.example/config"})
            else:
                self._json(200, smart.smart_configuration())
        elif parts.path == "/auth/.well-known/openid-configuration":
            self._json(200, smart.openid_configuration())
        elif parts.path == "/auth/jwks":
            self._json(200, public_jwks())
        elif parts.path == "/auth/authorize":
            status, headers, text = smart.authorize(q)
            self._send(status, text.encode(), "text/plain; charset=utf-8", headers)
        elif parts.path == "/ehr/launch":
            self._send(200, smart.ehr_page(q).encode(), "text/html; charset=utf-8")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        smart = self.server.smart
        parts = urlsplit(self.path)
        smart.requests.append(f"POST {parts.path}")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        if parts.path != "/auth/token":
            self._send(404, b"not found", "text/plain")
            return
        form = {k: v[0] for k, v in parse_qs(body).items()}
        status, doc = smart.token(form, self.headers.get("Authorization"))
        self._json(status, doc)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    smart: SmartTestServer


@contextmanager
def running_smart_server() -> Iterator[SmartTestServer]:
    """Start a SMART authorization server on a free loopback port; stop it afterwards."""
    server = _Server(("127.0.0.1", 0), _Handler)
    smart = SmartTestServer(origin=f"http://127.0.0.1:{server.server_address[1]}")
    server.smart = smart
    thread = threading.Thread(target=server.serve_forever, name="smart-server", daemon=True)
    thread.start()
    try:
        yield smart
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


CLIENT_ID = "rpm-dashboard"


def add_clinic(database_url: str, clinic_id: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO clinics (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (clinic_id, f"Clinic {clinic_id}"),
        )


def smart_settings(
    settings: Any,
    smart: SmartTestServer,
    public_url: str,
    *,
    clinic: str = "north",
    secret: str | None = None,
) -> Any:
    """``settings`` with SMART launch configured for ``smart`` (as ``clinic``), the client registered
    at the server with the service's redirect URI."""
    from pydantic import SecretStr

    smart.register(CLIENT_ID, f"{public_url}/smart/callback", secret)
    return settings.model_copy(
        update={
            "smart_client_id": CLIENT_ID,
            "smart_client_secret": None if secret is None else SecretStr(secret),
            "smart_issuers": {smart.fhir_base: clinic},
            "public_url": public_url,
        }
    )
