"""What an optional part of the running service is: the type the composition root plugs in.

A component factory receives the wired services and returns what it adds: API routers, hooks on
newly stored readings and ECG strips (run inside the ingest transaction), and background work
started after the API is ready and stopped (in reverse order) before the pool closes.

This module names no feature (features import it); the list of the components the service runs
is kept by the composition root, :mod:`ingest.runtime`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter

from ingest.pipeline import NewReadingsHook, NewStripsHook
from ingest.services import Services


@dataclass
class Component:
    name: str
    routers: Sequence[APIRouter] = ()
    hooks: Sequence[NewReadingsHook] = ()
    strip_hooks: Sequence[NewStripsHook] = ()  # on newly stored ECG strips, same transaction
    start: Callable[[], None] | None = None
    stop: Callable[[], None] | None = None
    extras: dict[str, object] = field(default_factory=dict)


ComponentFactory = Callable[[Services], Component]
