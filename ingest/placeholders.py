"""Placeholder secrets: values copied from an example and never replaced.

``deploy/env.example`` and every guide show passwords such as ``change-me-...``; a deployment that
keeps one runs with a password anybody can read. :func:`placeholder_reason` recognises such values
(pure, no I/O): the settings refuse them outside ``RPM_ENVIRONMENT=development`` and the broker
credential commands refuse them always.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote, urlsplit

#: A secret starting with one of these was copied from an example.
PLACEHOLDER_PREFIXES: Final = ("change-me", "changeme", "change_me", "replace-me", "replaceme", "replace_me")
#: Whole values that are nobody's secret.
PLACEHOLDER_WORDS: Final = frozenset(
    {"password", "passwd", "secret", "changeit", "placeholder", "example", "default", "todo", "none", "null"}
)
# <your password>, ${POSTGRES_PASSWORD} (a variable nobody expanded), xxxx, ****
_TEMPLATE_RE: Final = re.compile(r"^(<.*>|\$\{.*\}|\$\(.*\)|x+|\*+)$", re.IGNORECASE)


def placeholder_reason(value: str) -> str | None:
    """Why ``value`` is a placeholder rather than a secret, or None when it may be a real one.

    The reason never repeats the value beyond the placeholder pattern it matched.
    """
    text = value.strip()
    if not text:
        return "it is empty"
    folded = text.casefold()
    for prefix in PLACEHOLDER_PREFIXES:
        if folded.startswith(prefix):
            return f"it starts with {prefix!r}"
    if folded in PLACEHOLDER_WORDS:
        return f"it is the word {folded!r}"
    if _TEMPLATE_RE.match(text):
        return "it is a template, not a value"
    return None


def url_password(url: str) -> str | None:
    """The password written in a URL's user part (decoded), or None when it has none.

    ``scheme://user@host`` has no password; ``scheme://user:@host`` has an empty one.
    """
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return None
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return None
    _, colon, password = userinfo.partition(":")
    return unquote(password) if colon else None
