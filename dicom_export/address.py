"""A DICOM Application Entity's address (``AETITLE@host:port``) and AE title rules, without the
network library: the settings check them at start-up."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# An AE title: 1-16 characters of the default repertoire, no backslash or control characters
# (PS3.5 6.2, VR AE); leading and trailing spaces are not significant.
_AE_TITLE: Final = r"[^\\\x00-\x1f\x7f@]{1,16}"
_HOST: Final = r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:]+\]"
_ADDRESS: Final = re.compile(rf"^(?P<ae>{_AE_TITLE})@(?P<host>{_HOST}):(?P<port>[0-9]{{1,5}})$")


@dataclass(frozen=True, slots=True)
class AeAddress:
    """The PACS's Storage SCP: its AE title, host and port (``AETITLE@host:port``)."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> AeAddress:
        match = _ADDRESS.match(text.strip())
        if match is None or not 1 <= int(match["port"]) <= 65535 or not match["ae"].strip():
            raise ValueError("a DICOM AE address is AETITLE@host:port (AE title 1-16 characters)")
        return cls(match["ae"].strip(), match["host"].strip("[]"), int(match["port"]))

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def check_ae_title(title: str) -> str:
    if re.fullmatch(_AE_TITLE, title) is None or not title.strip():
        raise ValueError("an AE title is 1-16 characters, no backslash or control characters")
    return title.strip()
