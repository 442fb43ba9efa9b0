"""The one place that picks the auth implementation from configuration values."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import httpx

from fhir_export.auth import DEFAULT_SCOPE, Auth, BearerAuth, NoAuth, SigningKey, SmartBackendAuth
from fhir_export.errors import ConfigurationError

AuthMode = Literal["none", "bearer", "smart-backend"]


def build_auth(
    mode: AuthMode,
    http: httpx.Client,
    *,
    base_url: str,
    token: str | None = None,
    client_id: str | None = None,
    private_key_file: Path | None = None,
    token_url: str | None = None,
    scope: str = DEFAULT_SCOPE,
) -> Auth:
    """``none``, ``bearer`` (``token``) or ``smart-backend`` (client id + private key file; the
    token is asked for ``scope``)."""
    if mode == "none":
        return NoAuth()
    if mode == "bearer":
        if not token:
            raise ConfigurationError("bearer auth needs a token")
        return BearerAuth(token)
    if mode == "smart-backend":
        if not client_id or private_key_file is None:
            raise ConfigurationError("smart-backend auth needs a client id and a private key file")
        return SmartBackendAuth(
            http,
            base_url=base_url,
            client_id=client_id,
            key=SigningKey.from_file(private_key_file),
            token_url=token_url,
            scope=scope,
        )
    raise ConfigurationError(f"unknown FHIR auth mode {mode!r}")
