"""Validate the id token of a SMART launch (OpenID Connect Core §3.1.3.7) with PyJWT.

Pure: the token, the EHR's key set and what the launch expects go in; the claims come out, or
:class:`IdTokenInvalid` (or :class:`UnknownSigningKey`) says what was wrong. Only asymmetric
algorithms are accepted (never ``none``, never an HMAC keyed with a public key).
"""

from __future__ import annotations

import hmac
from typing import Any, Final

import jwt

from ingest.smart.errors import AuthorizationFailed

ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_KEY_TYPES: Final = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
LEEWAY_S: Final = 60
MAX_TOKEN_LENGTH: Final = 16 * 1024


class IdTokenInvalid(AuthorizationFailed):
    """The id token is malformed, not signed by the EHR, or not meant for this launch."""


class UnknownSigningKey(IdTokenInvalid):
    """The id token names a key the EHR's key set does not hold (read the set again once)."""


def _signing_key(token: str, jwks: dict[str, Any]) -> tuple[Any, str]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise IdTokenInvalid("the id token is not a signed JWT") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise IdTokenInvalid(f"the id token is signed with {str(alg)[:20]!r}, not an accepted algorithm")
    try:
        keys = jwt.PyJWKSet.from_dict(jwks).keys
    except jwt.PyJWKSetError:
        keys = []
    kid = header.get("kid")
    usable = [k for k in keys if k.public_key_use in (None, "sig")]
    if kid is not None:
        usable = [k for k in usable if k.key_id == kid]
    elif len(usable) > 1:
        usable = [k for k in usable if k.algorithm_name == alg]
    if len(usable) != 1:
        raise UnknownSigningKey("the id token is signed by a key the EHR does not publish")
    if usable[0].key_type != _KEY_TYPES[alg[:2]]:
        raise IdTokenInvalid(
            f"the id token's algorithm {alg} does not fit the EHR's {usable[0].key_type} key"
        )
    return usable[0].key, alg


def validate_id_token(
    token: str, *, jwks: dict[str, Any], issuer: str, client_id: str, nonce: str
) -> dict[str, Any]:
    """The claims of a valid id token: signature by one of the EHR's keys, ``iss`` the EHR's
    OpenID issuer, ``aud`` this client, unexpired, and the launch's ``nonce``."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise IdTokenInvalid("the id token is missing or too long")
    key, alg = _signing_key(token, jwks)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=client_id,
            issuer=issuer,
            leeway=LEEWAY_S,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.InvalidSignatureError:
        raise IdTokenInvalid("the id token's signature does not verify against the EHR's keys") from None
    except jwt.ExpiredSignatureError:
        raise IdTokenInvalid("the id token has expired") from None
    except jwt.InvalidAudienceError:
        raise IdTokenInvalid("the id token was issued for another application (aud)") from None
    except jwt.InvalidIssuerError:
        raise IdTokenInvalid("the id token was issued by another issuer than the EHR's") from None
    except jwt.MissingRequiredClaimError as exc:
        raise IdTokenInvalid(f"the id token lacks the {exc.claim!r} claim") from None
    except jwt.ImmatureSignatureError:
        raise IdTokenInvalid("the id token is not valid yet") from None
    except jwt.PyJWTError as exc:  # any other refusal, a key of the wrong type included
        raise IdTokenInvalid(f"the id token is not valid ({type(exc).__name__})") from None
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
        raise IdTokenInvalid("the id token names several audiences and another authorized party")
    got = claims.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
        raise IdTokenInvalid("the id token's nonce is not this launch's")
    return claims
