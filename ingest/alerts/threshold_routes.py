"""Alert configuration: a patient's thresholds, every rule's overrides (patient and clinic level),
and the clinic's outbound webhooks with their delivery log.

Thresholds are the friendly face of the ``threshold:<metric>`` rules. PUT replaces the patient's
override of one metric: fields present are set (``null`` removes a bound), absent fields keep the
clinic default. Webhook management is for admins; staff of the clinic may read the delivery log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Path, Query, status

from ingest.alerts import config, webhooks
from ingest.alerts.context import AlertsContext, AlertsDep
from ingest.alerts.kinds.threshold import ThresholdParams, threshold_params
from ingest.alerts.rules import Rule
from ingest.alerts.schemas import (
    DeliveriesPage,
    RuleIn,
    RuleKindPublic,
    RuleKindsPage,
    RulePublic,
    RulesPage,
    ThresholdIn,
    ThresholdPublic,
    ThresholdsPage,
    WebhookCreated,
    WebhookIn,
    WebhookPublic,
)
from ingest.alerts.webhook_policy import DestinationRefused
from ingest.api.deps import AdminDep, ServicesDep, StaffDep, ensure_clinic_visible, visible_patient
from ingest.errors import InvalidRule
from ingest.services import Services
from ingest.store import roster
from ingest.store.tokens import Principal

logger = logging.getLogger(__name__)
router = APIRouter(tags=["alert configuration"])

RuleKey = Annotated[str, Path(pattern=r"^[a-z0-9_.:-]{1,100}$")]
MetricName = Annotated[str, Path(pattern=r"^[a-z0-9_]{1,64}$")]
ClinicPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


def _threshold_public(services: Services, rule: Rule) -> ThresholdPublic:
    p = threshold_params(rule)
    assert rule.metric is not None
    metric = services.pipeline.catalogue.get(rule.metric)
    return ThresholdPublic(
        metric=rule.metric,
        unit=metric.ucum_unit if metric else "",
        low=p.low,
        high=p.high,
        critical_low=p.critical_low,
        critical_high=p.critical_high,
        hysteresis=p.hysteresis,
        consecutive=p.consecutive,
        sustained_seconds=p.sustained_seconds,
        debounce_critical=p.debounce_critical,
        latch=p.latch,
        enabled=rule.enabled,
        source=rule.source,
    )


def _rule_public(rule: Rule) -> RulePublic:
    return RulePublic(
        key=rule.key,
        kind=rule.kind,
        metric=rule.metric,
        enabled=rule.enabled,
        params=rule.params.model_dump(),
        source=rule.source,
    )


def _patient_and_rule_key(
    services: Services, principal: Principal, patient_id: UUID, metric: str
) -> tuple[dict[str, Any], str]:
    """The patient (404 unless visible) and the key of their threshold rule for a known metric."""
    if metric not in services.pipeline.catalogue:
        raise HTTPException(404, f"unknown metric {metric[:64]!r}")
    return visible_patient(services, principal, patient_id), f"threshold:{metric}"


def _set_override(
    services: Services,
    ctx: AlertsContext,
    key: str,
    clinic_id: str,
    patient_id: UUID | None,
    enabled: bool | None,
    params: Mapping[str, Any],
    principal: Principal,
) -> Rule:
    """Write the clinic's (or, with a patient, the patient's) override of rule ``key``; a 422 with
    the reason when the merged parameters are invalid."""
    with services.transaction() as conn:
        try:
            return config.set_override(
                conn,
                key,
                clinic_id=clinic_id,
                patient_id=patient_id,
                enabled=enabled,
                params=params,
                updated_by=principal.name,
                kinds=ctx.engine.kinds,
            )
        except InvalidRule as exc:
            raise HTTPException(422, str(exc)) from None


def _delete_override(
    services: Services, ctx: AlertsContext, key: str, clinic_id: str, patient_id: UUID | None
) -> Rule:
    """Drop the clinic's (or the patient's) override of rule ``key``: the rule in force after."""
    with services.transaction() as conn:
        return config.delete_override(
            conn, key, clinic_id=clinic_id, patient_id=patient_id, kinds=ctx.engine.kinds
        )


# --------------------------------------------------------------------------- rule kinds


@router.get(
    "/v1/alert-rule-kinds",
    response_model=RuleKindsPage,
    summary="The kinds of alert rules: labels, parameters (JSON Schema), default rules",
)
def get_rule_kinds(ctx: AlertsDep, _: StaffDep) -> RuleKindsPage:
    return RuleKindsPage(
        kinds=[
            RuleKindPublic(
                name=kind.name,
                label=kind.label,
                description=kind.description,
                scope=kind.scope,
                scheduled=kind.scheduled,
                title=kind.title,
                parameters=kind.params.model_json_schema(),
                default_rules=[d.key for d in kind.defaults()],
            )
            for kind in ctx.engine.kinds
        ]
    )


# --------------------------------------------------------------------------- thresholds


def _patient_rules(
    services: Services, ctx: AlertsContext, principal: Principal, patient_id: UUID
) -> list[Rule]:
    """The rules in force for a patient the caller may see (404 otherwise)."""
    patient = visible_patient(services, principal, patient_id)
    with services.transaction() as conn:
        return config.effective_rules(
            conn, clinic_id=patient["clinic_id"], patient_id=patient_id, kinds=ctx.engine.kinds
        )


@router.get("/v1/patients/{patient_id}/thresholds", response_model=ThresholdsPage)
def get_thresholds(
    patient_id: UUID, services: ServicesDep, ctx: AlertsDep, principal: StaffDep
) -> ThresholdsPage:
    """The thresholds in force for the patient, one per metric, with where each comes from."""
    rules = _patient_rules(services, ctx, principal, patient_id)
    order = {name: i for i, name in enumerate(services.pipeline.catalogue)}
    found = sorted(
        (r for r in rules if r.kind == "threshold" and r.metric is not None),
        key=lambda r: order.get(r.metric or "", len(order)),
    )
    return ThresholdsPage(patient_id=patient_id, thresholds=[_threshold_public(services, r) for r in found])


@router.get("/v1/patients/{patient_id}/thresholds/{metric}", response_model=ThresholdPublic)
def get_threshold(
    patient_id: UUID, metric: MetricName, services: ServicesDep, ctx: AlertsDep, principal: StaffDep
) -> ThresholdPublic:
    patient, key = _patient_and_rule_key(services, principal, patient_id, metric)
    with services.transaction() as conn:
        rule = config.effective_rule(
            conn, key, clinic_id=patient["clinic_id"], patient_id=patient_id, kinds=ctx.engine.kinds
        )
    return _threshold_public(services, rule)


@router.put(
    "/v1/patients/{patient_id}/thresholds/{metric}",
    response_model=ThresholdPublic,
    summary="Override the clinic's threshold of one metric for this patient",
)
def put_threshold(
    patient_id: UUID,
    metric: MetricName,
    body: ThresholdIn,
    services: ServicesDep,
    ctx: AlertsDep,
    principal: StaffDep,
) -> ThresholdPublic:
    patient, key = _patient_and_rule_key(services, principal, patient_id, metric)
    fields = {k: getattr(body, k) for k in body.model_fields_set if k != "enabled"}
    clinic_id = patient["clinic_id"]
    rule = _set_override(services, ctx, key, clinic_id, patient_id, body.enabled, fields, principal)
    assert isinstance(rule.params, ThresholdParams)
    return _threshold_public(services, rule)


@router.delete("/v1/patients/{patient_id}/thresholds/{metric}", response_model=ThresholdPublic)
def delete_threshold(
    patient_id: UUID, metric: MetricName, services: ServicesDep, ctx: AlertsDep, principal: StaffDep
) -> ThresholdPublic:
    """Drop the patient's override: the clinic default applies again."""
    patient, key = _patient_and_rule_key(services, principal, patient_id, metric)
    return _threshold_public(services, _delete_override(services, ctx, key, patient["clinic_id"], patient_id))


# --------------------------------------------------------------------------- rules (any kind)


@router.get("/v1/patients/{patient_id}/alert-rules", response_model=RulesPage)
def get_patient_rules(
    patient_id: UUID, services: ServicesDep, ctx: AlertsDep, principal: StaffDep
) -> RulesPage:
    rules = _patient_rules(services, ctx, principal, patient_id)
    return RulesPage(rules=[_rule_public(r) for r in rules])


@router.put(
    "/v1/patients/{patient_id}/alert-rules/{key}",
    response_model=RulePublic,
    summary="Override any rule for this patient (e.g. the expected cadence of missing:body_weight)",
)
def put_patient_rule(
    patient_id: UUID, key: RuleKey, body: RuleIn, services: ServicesDep, ctx: AlertsDep, principal: StaffDep
) -> RulePublic:
    patient = visible_patient(services, principal, patient_id)
    clinic_id = patient["clinic_id"]
    rule = _set_override(services, ctx, key, clinic_id, patient_id, body.enabled, body.params, principal)
    return _rule_public(rule)


@router.delete("/v1/patients/{patient_id}/alert-rules/{key}", response_model=RulePublic)
def delete_patient_rule(
    patient_id: UUID, key: RuleKey, services: ServicesDep, ctx: AlertsDep, principal: StaffDep
) -> RulePublic:
    patient = visible_patient(services, principal, patient_id)
    return _rule_public(_delete_override(services, ctx, key, patient["clinic_id"], patient_id))


def _clinic(services: Services, clinic_id: str) -> None:
    with services.transaction() as conn:
        roster.get_clinic(conn, clinic_id)  # NotFound -> 404


@router.get("/v1/clinics/{clinic_id}/alert-rules", response_model=RulesPage)
def get_clinic_rules(
    clinic_id: ClinicPath, services: ServicesDep, ctx: AlertsDep, principal: StaffDep
) -> RulesPage:
    ensure_clinic_visible(principal, clinic_id, f"clinic {clinic_id!r}")
    _clinic(services, clinic_id)
    with services.transaction() as conn:
        rules = config.effective_rules(conn, clinic_id=clinic_id, kinds=ctx.engine.kinds)
    return RulesPage(rules=[_rule_public(r) for r in rules])


@router.put("/v1/clinics/{clinic_id}/alert-rules/{key}", response_model=RulePublic)
def put_clinic_rule(
    clinic_id: ClinicPath,
    key: RuleKey,
    body: RuleIn,
    services: ServicesDep,
    ctx: AlertsDep,
    principal: AdminDep,
) -> RulePublic:
    """Change a rule for every patient of the clinic (patients' own overrides still win)."""
    _clinic(services, clinic_id)
    rule = _set_override(services, ctx, key, clinic_id, None, body.enabled, body.params, principal)
    return _rule_public(rule)


@router.delete("/v1/clinics/{clinic_id}/alert-rules/{key}", response_model=RulePublic)
def delete_clinic_rule(
    clinic_id: ClinicPath, key: RuleKey, services: ServicesDep, ctx: AlertsDep, _: AdminDep
) -> RulePublic:
    _clinic(services, clinic_id)
    return _rule_public(_delete_override(services, ctx, key, clinic_id, None))


# --------------------------------------------------------------------------- webhooks


def _webhook_public(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "clinic": row["clinic_id"]}


@router.post(
    "/v1/clinics/{clinic_id}/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    summary="Register a webhook; the answer shows its signing secret once",
)
def create_webhook(
    clinic_id: ClinicPath,
    body: WebhookIn,
    services: ServicesDep,
    principal: AdminDep,
    alerts: AlertsDep,
) -> dict[str, Any]:
    _clinic(services, clinic_id)
    url = str(body.url)
    if len(url) > 2000:
        raise HTTPException(422, "url is longer than 2000 characters")
    if services.settings.environment == "production" and not url.startswith("https://"):
        raise HTTPException(422, "webhooks must use https in production")
    try:
        alerts.webhooks.check_destination(url)
    except DestinationRefused as exc:
        raise HTTPException(422, f"webhook destination refused: {exc.reason}") from None
    with services.transaction() as conn:
        row = webhooks.create_webhook(
            conn,
            clinic_id=clinic_id,
            url=url,
            description=body.description,
            min_severity=body.min_severity,
            event_types=list(dict.fromkeys(body.event_types)),
            created_by=principal.name,
        )
    return _webhook_public(row)


@router.get("/v1/clinics/{clinic_id}/webhooks", response_model=list[WebhookPublic])
def list_webhooks(clinic_id: ClinicPath, services: ServicesDep, principal: StaffDep) -> list[dict[str, Any]]:
    ensure_clinic_visible(principal, clinic_id, f"clinic {clinic_id!r}")
    with services.transaction() as conn:
        rows = webhooks.list_webhooks(conn, clinic_id)
    return [_webhook_public(r) for r in rows]


@router.delete("/v1/clinics/{clinic_id}/webhooks/{webhook_id}", response_model=WebhookPublic)
def disable_webhook(
    clinic_id: ClinicPath, webhook_id: UUID, services: ServicesDep, _: AdminDep
) -> dict[str, Any]:
    """Stop delivering to the webhook (its delivery log is kept)."""
    with services.transaction() as conn:
        webhooks.disable_webhook(conn, clinic_id, webhook_id)
        row = webhooks.get_webhook(conn, clinic_id, webhook_id)
    if row is None:
        raise HTTPException(404, f"webhook {webhook_id} not found")
    return _webhook_public(row)


@router.get("/v1/clinics/{clinic_id}/webhooks/{webhook_id}/deliveries", response_model=DeliveriesPage)
def webhook_deliveries(
    clinic_id: ClinicPath,
    webhook_id: UUID,
    services: ServicesDep,
    principal: StaffDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> dict[str, Any]:
    ensure_clinic_visible(principal, clinic_id, f"clinic {clinic_id!r}")
    with services.transaction() as conn:
        if webhooks.get_webhook(conn, clinic_id, webhook_id) is None:
            raise HTTPException(404, f"webhook {webhook_id} not found")
        rows = webhooks.deliveries(conn, webhook_id, limit=limit, before_id=before_id)
    return {"deliveries": rows}
