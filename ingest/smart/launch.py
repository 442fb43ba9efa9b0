"""What a launch sends to the EHR's authorization endpoint, and the secrets it keeps for the
callback. Pure: no I/O; randomness comes from :mod:`secrets`."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Final

#: EHR launch: the EHR passes its launch context with ``launch``.
EHR_LAUNCH_SCOPES: Final = (
    "launch",
    "openid",
    "fhirUser",
    "patient/Patient.read",
    "patient/Observation.read",
)
#: Standalone launch: the user picks the patient at the EHR.
STANDALONE_SCOPES: Final = (
    "launch/patient",
    "openid",
    "fhirUser",
    "patient/Patient.read",
    "patient/Observation.read",
)
LAUNCH_PATH: Final = "/smart/launch"
CALLBACK_PATH: Final = "/smart/callback"
MAX_LAUNCH_LENGTH: Final = 2000
BROWSER_COOKIE: Final = "rpm_smart_browser"


def scopes_for(launch: str | None) -> str:
    return " ".join(EHR_LAUNCH_SCOPES if launch is not None else STANDALONE_SCOPES)


def redirect_uri(public_url: str) -> str:
    return public_url.rstrip("/") + CALLBACK_PATH


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "replace")).digest()


@dataclass(frozen=True, slots=True)
class LaunchSecrets:
    """One launch's single-use values: ``state`` binds the callback to this launch, the
    ``browser`` value (a cookie) binds it to the browser that started it, ``nonce`` binds the id
    token to it, and the PKCE ``code_verifier`` binds the code to it."""

    state: str
    nonce: str
    code_verifier: str
    browser: str


def new_secrets(browser: str | None) -> LaunchSecrets:
    """Fresh secrets; the browser value is kept when the browser already has a valid one (so two
    launches in two tabs of one browser both succeed)."""
    if browser is None or not is_token(browser):
        browser = secrets.token_urlsafe(32)
    return LaunchSecrets(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64),  # 86 characters of [A-Za-z0-9_-]: RFC 7636 §4.1
        browser=browser,
    )


def is_token(value: str) -> bool:
    """A value of the shape ``secrets.token_urlsafe(32)`` produces (43 URL-safe characters)."""
    return 40 <= len(value) <= 64 and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)


def valid_launch_parameter(launch: str) -> bool:
    """The EHR's opaque ``launch`` value: printable ASCII of bounded length (it is sent back)."""
    return 0 < len(launch) <= MAX_LAUNCH_LENGTH and all(0x21 <= ord(c) < 0x7F for c in launch)
