"""HL7 v2 escape sequences for text put into a message.

python-hl7's :func:`hl7.util.escape` turns the delimiters into ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``
but also rewrites every non-ASCII character as a ``\\Xhh\\`` escape of its code point, which is
not UTF-8 (``MSH-18`` says ``UNICODE UTF-8``), and writes a control character with a malformed
hex escape (``\\X 9\\``). So text is escaped here in runs: ASCII runs through the library,
other characters kept as they are, line breaks as ``\\.br\\``, other control characters as a
space.
"""

from __future__ import annotations

import re
from typing import Final

import hl7
import hl7.util

_LINE_BREAKS: Final = {"\n": ".br"}
# A container that knows the standard delimiters |^~\& (python-hl7 reads them from it).
_ER7: Final = hl7.parse("MSH|^~\\&|\r")
# What needs escaping or rewriting; most values (codes, ids, numbers) have none and pass as they are.
_SPECIAL: Final = re.compile(r"[|^~\\&\x00-\x1f\x7f]")


def escape(text: str) -> str:
    """``text`` safe in any field, component or subcomponent of an ER7 message."""
    if _SPECIAL.search(text) is None:
        return text
    out: list[str] = []
    run: list[str] = []
    for char in text.replace("\r\n", "\n").replace("\r", "\n"):
        if ord(char) < 0x20 and char != "\n" or ord(char) == 0x7F:
            char = " "
        if ord(char) < 0x80:
            run.append(char)
            continue
        if run:
            out.append(str(hl7.util.escape(_ER7, "".join(run), _LINE_BREAKS)))
            run.clear()
        out.append(char)
    if run:
        out.append(str(hl7.util.escape(_ER7, "".join(run), _LINE_BREAKS)))
    return "".join(out)


def unescape(text: str) -> str:
    """The text an escaped value stands for (the inverse of :func:`escape`)."""
    return str(hl7.util.unescape(_ER7, text))
