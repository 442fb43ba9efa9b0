"""The shape of the code, read from the source: no import cycles, arrows one way, routes named only
by the composition.

The import graph is built statically with :mod:`ast` (nothing is imported), from every ``import``
and ``from ... import`` statement anywhere in a module: at the top, inside functions (a lazy import
is still a dependency) and under ``if TYPE_CHECKING:``. Type-only imports count like the others:
a module that needs another's types to be checked depends on it, and a cycle through annotations
is a cycle in the design even when it never bites at run time.

How a statement becomes arrows:

- ``import a.b.c`` is an arrow to ``a.b.c`` (or to its longest prefix that is one of our modules).
- ``from pkg import name`` is an arrow to ``pkg.name`` when that is a module; otherwise, when
  ``pkg/__init__.py`` re-exports ``name`` from a submodule, to the submodule that defines it;
  otherwise to ``pkg`` itself.
- Importing ``a.b.c`` first runs ``a/__init__.py`` and ``a/b/__init__.py``: that is an arrow to
  each such package, except to packages the importing module is itself inside (they already ran).
  So a package ``__init__`` that imports its submodules is an arrow package -> submodule, and a
  module outside the package that imports one of them also depends on the package's ``__init__``.
- A package ``__init__`` that discovers its submodules (it calls ``pkgutil.iter_modules``, as the
  registry of alert rule kinds does) imports each of them at run time: an arrow to every one.

Pure BLE decoders importing no bleak is checked at import time (transitively) by
``tests/devices/ble/test_purity.py``; here only the static complement: no such import hides inside
a function, where the import-time check cannot see it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

from tests.support.paths import ROOT

PACKAGES: Final = ("ingest", "devices", "fhir_export", "dicom_export", "hl7_export")
# Which way the arrows between the packages may go: each may import those listed.
ALLOWED_PACKAGE_ARROWS: Final = {
    "ingest": {"ingest", "fhir_export", "dicom_export", "hl7_export", "devices"},
    "fhir_export": {"fhir_export", "devices"},
    "dicom_export": {"dicom_export", "devices"},
    "hl7_export": {"hl7_export", "devices"},
    "devices": {"devices"},
}
# The composition root (builds the service from its components) and the app factory (includes the
# core API routers): the only modules that may name route modules, besides a feature's component
# naming its own feature's routes.
COMPOSITION_ROOT: Final = "ingest.runtime"
APP_FACTORY: Final = "ingest.api.app"
API_ROUTES: Final = "ingest.api.routes"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # one of our modules, or the top-level name of an outside distribution
    line: int
    internal: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _sources() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


@cache
def _tree(module: str) -> ast.Module:
    path = _sources()[module]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_package(module: str) -> bool:
    return _sources()[module].name == "__init__.py"


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` reads from, relative levels resolved."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not _is_package(module):
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _top_level_statements(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """A module's own statements, looking into ``if``/``try`` blocks but not into functions."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If):
            yield from _top_level_statements([*stmt.body, *stmt.orelse])
        elif isinstance(stmt, ast.Try):
            yield from _top_level_statements(
                [*stmt.body, *stmt.orelse, *stmt.finalbody, *(s for h in stmt.handlers for s in h.body)]
            )


@cache
def _reexports(package: str) -> dict[str, str]:
    """Names a package ``__init__`` takes from elsewhere, each with the module it comes from."""
    names: dict[str, str] = {}
    for stmt in _top_level_statements(_tree(package).body):
        if isinstance(stmt, ast.ImportFrom):
            origin = _absolute(package, stmt)
            for alias in stmt.names:
                names[alias.asname or alias.name] = f"{origin}.{alias.name}"
    return names


def _resolve_name(owner: str, name: str, seen: frozenset[str] = frozenset()) -> str:
    """The module that ``from owner import name`` depends on (``owner`` is one of ours)."""
    if f"{owner}.{name}" in _sources():
        return f"{owner}.{name}"
    if _is_package(owner) and owner not in seen:
        origin = _reexports(owner).get(name)
        if origin is not None:
            origin_module, _, origin_name = origin.rpartition(".")
            if origin_module in _sources() and origin_module != owner:
                return _resolve_name(origin_module, origin_name, seen | {owner})
    return owner


def _longest_module_prefix(dotted: str) -> str | None:
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in _sources():
            return candidate
    return None


def _with_packages(module: str, target: str) -> Iterator[str]:
    """The target and the package ``__init__`` files importing it runs first."""
    yield target
    parts = target.split(".")
    for n in range(1, len(parts)):
        package = ".".join(parts[:n])
        if not (module == package or module.startswith(package + ".")):
            yield package


@cache
def imports_of(module: str) -> tuple[Import, ...]:
    found: list[Import] = []
    for node in ast.walk(_tree(module)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = _absolute(module, node)
            if _longest_module_prefix(origin) is None:
                targets = [origin]
            else:
                targets = [f"{origin}.{alias.name}" for alias in node.names if alias.name != "*"]
                if any(alias.name == "*" for alias in node.names):
                    targets.append(origin)
        else:
            continue
        for dotted in targets:
            owner = _longest_module_prefix(dotted)
            if owner is None:
                found.append(Import(module, dotted.split(".")[0], node.lineno, internal=False))
                continue
            rest = dotted[len(owner) + 1 :]
            target = _resolve_name(owner, rest.split(".")[0]) if rest else owner
            for t in _with_packages(module, target):
                if t != module:
                    found.append(Import(module, t, node.lineno, internal=True))
    found.extend(_discovered(module))
    return tuple(dict.fromkeys(found))


def _discovered(package: str) -> Iterator[Import]:
    """Arrows to the submodules a package ``__init__`` imports by ``pkgutil.iter_modules``."""
    if not _is_package(package):
        return
    for node in ast.walk(_tree(package)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "iter_modules"
        ):
            for sub in _sources():
                if sub.rpartition(".")[0] == package:
                    yield Import(package, sub, node.lineno, internal=True)


@cache
def graph() -> dict[str, frozenset[str]]:
    return {m: frozenset(i.target for i in imports_of(m) if i.internal) for m in _sources()}


def strongly_connected_components(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit); components in discovery order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _describe(component: list[str]) -> str:
    members = set(component)
    lines = [f"cycle among {', '.join(component)}:"]
    for module in component:
        for imp in imports_of(module):
            if imp.internal and imp.target in members:
                lines.append(f"  {_sources()[module].relative_to(ROOT)}:{imp.line}: {module} -> {imp.target}")
    return "\n".join(dict.fromkeys(lines))


def test_the_tarjan_helper_finds_cycles_and_only_cycles() -> None:
    edges = {
        "a": frozenset({"b"}),
        "b": frozenset({"c"}),
        "c": frozenset({"a", "d"}),
        "d": frozenset({"e"}),
        "e": frozenset(),
    }
    found = [c for c in strongly_connected_components(edges) if len(c) > 1]
    assert found == [["a", "b", "c"]]


def test_the_graph_sees_lazy_type_checking_and_reexported_imports() -> None:
    g = graph()
    assert len(g) > 100 and all(m.split(".")[0] in PACKAGES for m in g)
    assert "ingest.settings" in g["ingest.runtime"]  # a plain top-level import
    assert "devices.ble.emulated.peripheral" in g["devices.ble.emulated.racp"]  # under TYPE_CHECKING
    assert "ingest.demo" in g["ingest.commands.serve"]  # inside a function
    # `from devices.ble import DecodeResult, decode`: the submodules defining them, and the package
    # whose __init__ runs first.
    assert {"devices.ble.result", "devices.ble.characteristics", "devices.ble"} <= g["ingest.commands.ble"]
    # The rule kinds package discovers its kind modules: an arrow to each.
    assert {"ingest.alerts.kinds.threshold", "ingest.alerts.kinds.sync"} <= g["ingest.alerts.kinds"]
    # `from devices.ble import racp` inside devices.ble: the submodule, not the package it is in.
    assert "devices.ble.racp" in g["devices.ble.collector_session"]
    assert "devices.ble" not in g["devices.ble.collector_session"]
    external = {i.target for i in imports_of("ingest.embedded.postgres") if not i.internal}
    assert "pgserver" in external  # a lazy import of an optional extra


def test_no_import_cycles() -> None:
    cycles = [c for c in strongly_connected_components(graph()) if len(c) > 1]
    assert not cycles, "\n\n".join(_describe(c) for c in cycles)


def test_arrows_go_ingest_to_the_exports_to_devices() -> None:
    """ingest -> fhir_export -> devices, ingest -> dicom_export -> devices and ingest -> hl7_export
    -> devices; the exports never import each other."""
    against = [
        f"{imp.source} -> {imp.target} ({_sources()[imp.source].relative_to(ROOT)}:{imp.line})"
        for module in _sources()
        for imp in imports_of(module)
        if imp.internal and imp.target.split(".")[0] not in ALLOWED_PACKAGE_ARROWS[module.split(".")[0]]
    ]
    assert not against, "imports against ingest -> {fhir,dicom,hl7}_export -> devices:\n" + "\n".join(against)


def _is_route_module(module: str) -> bool:
    in_api_routes = module == API_ROUTES or module.startswith(API_ROUTES + ".")
    return in_api_routes or "routes" in module.rsplit(".", 1)[-1]


def _may_import_routes(importer: str, route_module: str) -> bool:
    if importer == COMPOSITION_ROOT:
        return True
    if importer == APP_FACTORY and (route_module == API_ROUTES or route_module.startswith(API_ROUTES + ".")):
        return True
    # A feature's component plugs in its own feature's routers.
    feature, _, leaf = importer.rpartition(".")
    return leaf == "component" and route_module.startswith(feature + ".")


def test_only_the_composition_names_route_modules() -> None:
    assert _is_route_module("ingest.alerts.threshold_routes") and _is_route_module("ingest.api.routes.health")
    assert not _is_route_module("ingest.api.deps")
    wrong = [
        f"{imp.source} -> {imp.target} ({_sources()[imp.source].relative_to(ROOT)}:{imp.line})"
        for module in _sources()
        if module.startswith("ingest.")
        for imp in imports_of(module)
        if imp.internal and _is_route_module(imp.target) and not _may_import_routes(module, imp.target)
    ]
    assert not wrong, "route modules imported below the composition:\n" + "\n".join(wrong)


def _component_factories(module: str) -> list[str]:
    """Top-level functions shaped like a component factory: ``(services: Services) -> Component``."""
    return [
        node.name
        for node in _tree(module).body
        if isinstance(node, ast.FunctionDef)
        and isinstance(node.returns, ast.Name | ast.Constant)
        and (node.returns.id if isinstance(node.returns, ast.Name) else node.returns.value) == "Component"
        and len(node.args.args) == 1
        and isinstance(node.args.args[0].annotation, ast.Name)
        and node.args.args[0].annotation.id == "Services"
    ]


def test_only_the_composition_root_names_the_features() -> None:
    providers = {m for m in _sources() if _component_factories(m)}
    assert {"ingest.alerts.component", "ingest.export.component", "ingest.mqtt.consumer"} <= providers
    assert providers <= graph()[COMPOSITION_ROOT], "the composition root misses a component"
    wrong = [
        f"{imp.source} -> {imp.target} ({_sources()[imp.source].relative_to(ROOT)}:{imp.line})"
        for module in _sources()
        if module != COMPOSITION_ROOT
        for imp in imports_of(module)
        if imp.internal and imp.target in providers
    ]
    assert not wrong, "component modules imported outside the composition root:\n" + "\n".join(wrong)


def test_pure_ble_decoders_import_no_bleak_even_lazily() -> None:
    decoders = [
        m
        for m in _sources()
        if m.startswith("devices.ble.")
        and m.count(".") == 2
        and not _is_package(m)
        and not m.rsplit(".", 1)[-1].startswith("collector")
    ]
    assert "devices.ble.heart_rate" in decoders
    bleak = [
        f"{imp.source} ({_sources()[imp.source].relative_to(ROOT)}:{imp.line})"
        for module in decoders
        for imp in imports_of(module)
        if not imp.internal and imp.target in ("bleak", "bleak_retry_connector", "bumble")
    ]
    assert not bleak, "pure BLE decoders importing a radio library:\n" + "\n".join(bleak)
