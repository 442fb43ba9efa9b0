"""The registry of rule kinds: found by itself (every module of the kinds package is one kind),
complete and consistent, known to the database (kinds and default rules, written by code without
touching existing rows), listed by the API, and open to a new kind by one module: a kind defined
here, in a registry of this test's own, is evaluated by the engine and accepted by the API."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Collection, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import psycopg
import pytest
from psycopg.rows import dict_row
from pydantic import Field

from ingest.alerts import kinds as kinds_package
from ingest.alerts.component import alerts_component
from ingest.alerts.evaluate import Open
from ingest.alerts.history import Group, GroupKey
from ingest.alerts.kinds import KINDS, MACHINERY, REGISTRY, KindRegistry, discover
from ingest.alerts.kinds.base import DefaultRule, ReadingsRun, RuleKind, opened
from ingest.alerts.kinds.sync import sync_kinds
from ingest.alerts.rules import Rule, RuleParams, Severity
from ingest.alerts.store import AlertKey, NewAlert
from ingest.db.migrate import available_migrations, migrate
from ingest.errors import InvalidRule
from ingest.settings import Settings
from tests.support.alerts import Clinic, ago, alert_settings, reading
from tests.support.db import RUN_ID, create_database, drop_database
from tests.support.service import RunningService, running_service

# --------------------------------------------------------------------------- the registry itself


def test_every_kind_is_complete() -> None:
    assert len(REGISTRY) == len(KINDS) >= 5
    keys: list[str] = []
    for kind in REGISTRY:
        assert issubclass(kind.params, RuleParams), kind.name
        assert kind.label.strip() and kind.description.strip(), kind.name
        assert kind.scope in ("metric", "device"), kind.name
        assert kind.evaluates_readings, f"{kind.name} does not evaluate new readings"
        assert bool(kind.tick_counts) == kind.scheduled, kind.name
        assert {"{metric}", "{value}", "{label}"} >= set(_fields(kind.title)), kind.name
        assert kind.defaults(), f"{kind.name} brings no default rule"
        for default in kind.defaults():
            REGISTRY.parse(kind.name, default.params)  # raises when invalid
            keys.append(default.key)
    assert len(keys) == len(set(keys)), "two default rules share a key"
    assert REGISTRY.names == tuple(k.name for k in KINDS)
    assert {k.name for k in REGISTRY.scheduled} == {"missing_data", "low_battery"}


def _fields(template: str) -> list[str]:
    return [part[: part.index("}") + 1] for part in ("{" + p for p in template.split("{")[1:])]


def test_every_module_of_the_package_is_one_kind() -> None:
    """Adding a kind is adding a module: the registry finds every module of the package (but the
    machinery) and takes its KIND, in the order the kinds set."""
    folder = Path(kinds_package.__file__ or "").parent
    modules = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__" and p.stem not in MACHINERY)
    kind_of = {type(k).__module__: k for k in KINDS}
    assert sorted(kind_of) == [f"ingest.alerts.kinds.{m}" for m in modules], (
        f"modules without a kind: {sorted(set(modules) - {m.rpartition('.')[2] for m in kind_of})}"
    )
    for module, kind in kind_of.items():
        assert sys.modules[module].KIND is kind, module
    assert MACHINERY <= {p.stem for p in folder.glob("*.py")}
    assert REGISTRY.names == ("threshold", "rate_of_change", "missing_data", "device_status", "low_battery")
    orders = [k.order for k in REGISTRY]
    assert orders == sorted(set(orders)), "the kinds' orders are not unique"


KIND_MODULE = """
from ingest.alerts.kinds.device_status import DeviceStatusKind


class Kind(DeviceStatusKind):
    name = "{name}"
    order = {order}


KIND = Kind()
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """An empty package of this test's own, importable (and forgotten afterwards)."""
    name = f"rule_kinds_{uuid.uuid4().hex[:10]}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, tmp_path / name
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def test_discovery_takes_each_kind_in_its_order(package: tuple[str, Path]) -> None:
    name, folder = package
    (folder / "late.py").write_text(KIND_MODULE.format(name="late", order=2), encoding="utf-8")
    (folder / "early.py").write_text(KIND_MODULE.format(name="early", order=1), encoding="utf-8")
    (folder / "base.py").write_text("X = 1\n", encoding="utf-8")  # machinery: no kind
    assert [k.name for k in discover(name, [str(folder)])] == ["early", "late"]


def test_discovery_refuses_a_module_without_a_kind(package: tuple[str, Path]) -> None:
    name, folder = package
    (folder / "ceiling.py").write_text(KIND_MODULE.format(name="ceiling", order=1), encoding="utf-8")
    (folder / "helpers.py").write_text("LIMIT = 3\n", encoding="utf-8")
    refused = rf"^{name}\.helpers is in the rule kinds package but defines no KIND"
    with pytest.raises(ImportError, match=refused):
        discover(name, [str(folder)])


def test_discovery_refuses_two_kinds_of_one_order(package: tuple[str, Path]) -> None:
    name, folder = package
    (folder / "one.py").write_text(KIND_MODULE.format(name="one", order=7), encoding="utf-8")
    (folder / "two.py").write_text(KIND_MODULE.format(name="two", order=7), encoding="utf-8")
    with pytest.raises(ImportError, match=rf"{name}\.two and {name}\.one: two rule kinds of order 7"):
        discover(name, [str(folder)])


def test_names_are_unique() -> None:
    with pytest.raises(ValueError, match="two rule kinds"):
        KindRegistry([*KINDS, KINDS[0]])


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(InvalidRule, match="unknown rule kind"):
        REGISTRY["nonsense"]


# --------------------------------------------------------------------------- the database


def _kinds_in_db(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT name, label, description, scheduled FROM alert_rule_kinds")
        return {r["name"]: r for r in cur.fetchall()}


def _defaults_in_db(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT key, kind, metric, enabled, params, description FROM alert_rules"
            " WHERE clinic_id IS NULL AND patient_id IS NULL"
        )
        return {r["key"]: r for r in cur.fetchall()}


def _version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT version FROM alert_config").fetchone()
    assert row is not None
    return int(row[0])


def test_the_database_knows_every_kind_and_its_default_rules(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        stored = _kinds_in_db(conn)
        defaults = _defaults_in_db(conn)
    for kind in REGISTRY:
        assert stored[kind.name] == {
            "name": kind.name,
            "label": kind.label,
            "description": kind.description,
            "scheduled": kind.scheduled,
        }
        for d in kind.defaults():
            row = defaults[d.key]
            assert (row["kind"], row["metric"], row["enabled"]) == (kind.name, d.metric, d.enabled), d.key
            assert row["params"] == dict(d.params), d.key
            assert row["description"] == d.description, d.key
    # The registry brings exactly the rows the first installations were seeded with.
    assert set(defaults) == {d.key for k in REGISTRY for d in k.defaults()}


def test_the_database_refuses_a_rule_of_an_unknown_kind(db_url: str) -> None:
    with psycopg.connect(db_url) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(
            "INSERT INTO alert_rules (key, kind, enabled, params) VALUES ('x:y', 'nonsense', true, '{}')"
        )


def test_sync_is_idempotent_and_never_overwrites(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO clinics (id, name) VALUES ('c1', 'Clinic 1')")
        conn.execute(
            "UPDATE alert_rules SET params = params || '{\"low\": 55}'::jsonb, enabled = false"
            " WHERE key = 'threshold:heart_rate' AND clinic_id IS NULL"
        )
        conn.execute(
            "INSERT INTO alert_rules (key, kind, metric, clinic_id, enabled, params)"
            " VALUES ('threshold:spo2', 'threshold', 'spo2', 'c1', NULL, '{\"low\": 90}')"
        )
        conn.execute("DELETE FROM alert_rules WHERE key = 'missing:steps'")
        conn.commit()
        before = _defaults_in_db(conn)
        version = _version(conn)

        result = sync_kinds(conn, REGISTRY)
        assert (result.kinds_written, result.defaults_added) == (0, 1)  # only the deleted one
        after = _defaults_in_db(conn)
        assert after["threshold:heart_rate"] == before["threshold:heart_rate"]  # kept as changed
        assert after["threshold:heart_rate"]["params"]["low"] == 55
        assert after["missing:steps"]["enabled"] is False  # back, as the registry has it
        clinic_row = conn.execute(
            "SELECT params FROM alert_rules WHERE clinic_id = 'c1' AND key = 'threshold:spo2'"
        ).fetchone()
        assert clinic_row == ({"low": 90},)

        version = _version(conn)
        assert sync_kinds(conn, REGISTRY) == type(result)(0, 0)
        assert _version(conn) == version, "a sync in step wrote to alert_rules"


def test_an_existing_installation_keeps_its_rules() -> None:
    """A database migrated before kinds were registered (up to 0006), with a clinic's own rule
    and a default changed by hand, migrates to the registry without losing either."""
    name = f"rpm_test_{RUN_ID}_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for m in available_migrations():
                if m.version >= 7:
                    break
                with conn.transaction():
                    conn.execute(m.sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (m.version, m.name, m.checksum),
                    )
            conn.execute("INSERT INTO clinics (id, name) VALUES ('c1', 'Clinic 1')")
            conn.execute(
                "INSERT INTO alert_rules (key, kind, metric, clinic_id, enabled, params)"
                " VALUES ('missing:body_weight', 'missing_data', 'body_weight', 'c1', false,"
                " '{\"expected_every_seconds\": 172800}')"
            )
            conn.execute(
                "UPDATE alert_rules SET params = params || '{\"high\": 120}'::jsonb"
                " WHERE key = 'threshold:heart_rate' AND clinic_id IS NULL"
            )
            before = conn.execute(
                "SELECT id, key, clinic_id, enabled, params FROM alert_rules ORDER BY id"
            ).fetchall()

        applied = migrate(url, timescale_mode="off")
        assert applied == [m.version for m in available_migrations() if m.version >= 7]

        with psycopg.connect(url) as conn:
            after = conn.execute(
                "SELECT id, key, clinic_id, enabled, params FROM alert_rules ORDER BY id"
            ).fetchall()
            assert after == before  # every row, customised or not, as it was
            assert set(_kinds_in_db(conn)) == set(REGISTRY.names)
    finally:
        drop_database(name)


# --------------------------------------------------------------------------- the API


def test_the_api_lists_the_kinds(clinic: Clinic) -> None:
    r = clinic.http.get("/v1/alert-rule-kinds")
    assert r.status_code == 200, r.text
    kinds = {k["name"]: k for k in r.json()["kinds"]}
    assert list(kinds) == list(REGISTRY.names)
    assert kinds["threshold"]["label"] == "out of range"
    assert kinds["threshold"]["scope"] == "metric" and kinds["low_battery"]["scope"] == "device"
    assert [n for n, k in kinds.items() if k["scheduled"]] == ["missing_data", "low_battery"]
    assert "critical_low" in kinds["threshold"]["parameters"]["properties"]
    assert "expected_every_seconds" in kinds["missing_data"]["parameters"]["required"]
    assert "threshold:spo2" in kinds["threshold"]["default_rules"]
    assert kinds["rate_of_change"]["title"] == "{metric}{value} \u2014 {label}"


def test_a_clinician_reads_the_kinds_and_nobody_without_a_token(svc: RunningService) -> None:
    with svc.client(svc.token("clinician", name="dr", clinic="default")) as http:
        assert http.get("/v1/alert-rule-kinds").status_code == 200
    with svc.client(None) as http:
        assert http.get("/v1/alert-rule-kinds").status_code == 401


# --------------------------------------------------------------------------- adding a kind


class CeilingParams(RuleParams):
    ceiling: Annotated[float, Field(allow_inf_nan=False, ge=0)]
    severity: Severity = "warning"


class CeilingKind(RuleKind):
    """A kind of this test's own: a reading above a ceiling opens an alert (and stays open)."""

    name = "ceiling"
    params = CeilingParams
    scope = "metric"
    label = "above the ceiling"
    description = "A reading above a fixed ceiling."

    def defaults(self) -> Sequence[DefaultRule]:
        return (DefaultRule("ceiling:steps", True, {"ceiling": 30000}, "steps", "Too many steps"),)

    def select(self, run: ReadingsRun) -> Collection[GroupKey]:
        return [k for k, g in run.groups.items() if run.book.keys(kind=self.name, metric=g.metric)]

    def on_group(self, run: ReadingsRun, gkey: GroupKey, g: Group) -> None:
        for key_name in run.book.keys(kind=self.name, metric=g.metric):
            rule = run.book.rule(g.patient_id, key_name)
            if rule is None or not rule.enabled:
                continue
            p = rule.params
            assert isinstance(p, CeilingParams)
            key: AlertKey = (g.patient_id, key_name, "")
            above = [sr.reading for sr in g.readings if sr.reading.value > p.ceiling]
            if not above or run.writer.state(key) is not None:
                continue
            r = above[0]
            message = f"{g.metric} {r.value:g} above {p.ceiling:g}"

            def new_alert(
                d: Open, rule: Rule = rule, message: str = message, device: str = r.device_id
            ) -> NewAlert:
                return opened(d, g.patient_id, rule, "", message, device)

            def raised(_severity: str, message: str = message) -> str:
                return message

            decision = Open(p.severity, r.measured_at, r.measured_at, r.value, r.value)
            run.writer.apply(key, decision, new_alert=new_alert, raised_message=raised)


@pytest.fixture
def extended(settings: Settings) -> Iterator[Clinic]:
    kinds = REGISTRY.with_kinds(CeilingKind())
    factory = partial(alerts_component, kinds=kinds)
    with running_service(alert_settings(settings), factories=[factory]) as s:
        with s.client(s.token("admin", name="admin-1")) as http:
            yield Clinic(s, http)


def test_a_kind_in_one_module_is_evaluated_and_accepted(extended: Clinic) -> None:
    pid = extended.patient()
    extended.post("DEV-1", reading("steps", 12000, ago(hours=2)), reading("steps", 31000, ago(hours=1)))
    [alert] = extended.active(pid, "ceiling:steps")
    assert (alert["kind"], alert["value"], alert["message"]) == ("ceiling", 31000, "steps 31000 above 30000")
    # The API knows the kind: filters by it, validates its parameters with its model, lists it.
    r = extended.http.get("/v1/alerts", params={"kind": "ceiling"})
    assert r.status_code == 200 and [a["id"] for a in r.json()["alerts"]] == [alert["id"]]
    bad = extended.http.put(f"/v1/patients/{pid}/alert-rules/ceiling:steps", json={"params": {"ceiling": -1}})
    assert bad.status_code == 422 and "ceiling" in bad.text
    assert extended.set_rule(pid, "ceiling:steps", params={"ceiling": 50000})["params"]["ceiling"] == 50000
    listed = extended.http.get("/v1/alert-rule-kinds").json()["kinds"]
    assert listed[-1]["name"] == "ceiling" and listed[-1]["label"] == "above the ceiling"
    # ... and the service's own registry is untouched.
    assert "ceiling" not in REGISTRY


def test_the_service_registry_refuses_that_kind(clinic: Clinic) -> None:
    r = clinic.http.get("/v1/alerts", params={"kind": "ceiling"})
    assert r.status_code == 422 and "unknown kind" in r.text
