"""Which readings travel together: panel membership, keys, completeness and order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devices.catalogue import BP_COMPONENTS, load_catalogue
from devices.models import Reading
from fhir_export.mapping import ObservationMapper
from fhir_export.models import DeviceInfo, ExportItem
from fhir_export.panels import (
    LATE_PREFIX,
    PANEL_KEY,
    Grouping,
    PanelKey,
    group_panels,
    in_panel_order,
    is_complete,
    late_components,
    late_key,
    panel_key,
    panel_order,
)
from fhir_export.table import build_table

T0 = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)


def bp(metric: str, value: float, *, device: str = "cuff-1", at: datetime = T0) -> Reading:
    return Reading(device, metric, value, "mm[Hg]", at, value, "mm[Hg]")


def test_grouping_of_the_table_splits_single_metrics_from_panel_components() -> None:
    grouping = Grouping.of(build_table())
    assert grouping.panel_metrics == frozenset({"systolic_bp", "diastolic_bp", "mean_arterial_pressure"})
    assert grouping.single_metrics == set(load_catalogue()) - grouping.panel_metrics
    assert "heart_rate" in grouping.single_metrics
    assert grouping.is_panel_member("diastolic_bp") and not grouping.is_single("diastolic_bp")
    assert grouping.is_single("spo2") and not grouping.is_panel_member("spo2")


def test_export_keys() -> None:
    grouping = Grouping.of(build_table())
    assert grouping.export_key("heart_rate") == "heart_rate"
    assert {grouping.export_key(m) for m in BP_COMPONENTS} == {PANEL_KEY} == {"bp_panel"}
    assert grouping.export_key("not_a_metric") is None
    assert late_key("mean_arterial_pressure") == LATE_PREFIX + "mean_arterial_pressure"
    assert late_key("diastolic_bp") == "late:diastolic_bp"


def test_one_device_at_one_time_is_one_panel() -> None:
    later = T0 + timedelta(seconds=1)
    readings = [
        bp("systolic_bp", 120),
        bp("systolic_bp", 131, device="cuff-2"),
        bp("diastolic_bp", 80),
        bp("systolic_bp", 118, at=later),
        bp("mean_arterial_pressure", 93),
    ]
    panels = group_panels(readings, lambda r: r)
    assert panels == {
        PanelKey("cuff-1", T0): [readings[0], readings[2], readings[4]],
        PanelKey("cuff-2", T0): [readings[1]],
        PanelKey("cuff-1", later): [readings[3]],
    }
    assert panel_key(readings[4]) == PanelKey("cuff-1", T0)


def test_group_panels_keeps_the_callers_items() -> None:
    items = [("patient-a", bp("diastolic_bp", 80)), ("patient-a", bp("systolic_bp", 120))]
    assert group_panels(items, lambda pair: pair[1]) == {PanelKey("cuff-1", T0): items}


def test_a_panel_is_complete_with_systolic_and_diastolic() -> None:
    assert is_complete({"systolic_bp", "diastolic_bp"})
    assert is_complete(["diastolic_bp", "mean_arterial_pressure", "systolic_bp"])
    assert not is_complete({"systolic_bp", "mean_arterial_pressure"})
    assert not is_complete({"diastolic_bp"})
    assert not is_complete(())


def test_late_components_are_those_the_sent_panel_lacks() -> None:
    arriving = ["systolic_bp", "mean_arterial_pressure"]
    assert late_components(arriving, {"systolic_bp", "diastolic_bp"}) == ["mean_arterial_pressure"]
    assert late_components(arriving, set(BP_COMPONENTS)) == []
    assert late_components(arriving, set()) == arriving


def test_panel_order_is_systolic_diastolic_mean_then_by_name() -> None:
    metrics = ["zeta", "mean_arterial_pressure", "alpha", "diastolic_bp", "systolic_bp"]
    assert sorted(metrics, key=panel_order) == [
        "systolic_bp", "diastolic_bp", "mean_arterial_pressure", "alpha", "zeta",
    ]  # fmt: skip
    shuffled = [bp("mean_arterial_pressure", 93), bp("diastolic_bp", 80), bp("systolic_bp", 120)]
    assert [r.metric for r in in_panel_order(shuffled)] == list(BP_COMPONENTS)


def test_a_grouped_panel_maps_to_one_observation_with_components() -> None:
    readings = [bp("diastolic_bp", 80), bp("heart_rate", 0.0, device="other"), bp("systolic_bp", 120)]
    grouping = Grouping.of(build_table())
    members = [r for r in readings if grouping.is_panel_member(r.metric)]
    [(key, panel)] = group_panels(members, lambda r: r).items()
    item = ExportItem(in_panel_order(panel), "pat-1", DeviceInfo(key.device_id))
    resource = ObservationMapper(build_table()).observation(item, "Device/1").resource
    assert resource["code"]["coding"][0]["code"] == "85354-9"
    assert [c["code"]["coding"][0]["code"] for c in resource["component"]] == ["8480-6", "8462-4"]
    assert [c["valueQuantity"]["value"] for c in resource["component"]] == [120, 80]
