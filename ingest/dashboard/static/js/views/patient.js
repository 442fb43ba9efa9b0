// One patient: latest vitals, trend charts (24 h / 7 d / 30 d) with thresholds and alert
// markers, days with readings, ECG strips (views/ecg.js), devices, and the alert history.

import { compareAlerts } from "../alerts-store.js";
import { lineChart } from "../chart.js";
import { h, replace } from "../dom.js";
import { ago, dateTime, displayUnit, formatNumber, formatValue, metricLabel, sortMetrics } from "../format.js";
import { billingPanel } from "../billing/timer.js";
import { alertItem, alertTitle } from "./alert-item.js";
import { ecgSection } from "./ecg.js";
import { coverageMeter, reasons } from "./patients.js";

export const RANGES = {
  "24h": { label: "24 hours", ms: 24 * 3600e3, bucket: "15m" },
  "7d": { label: "7 days", ms: 7 * 24 * 3600e3, bucket: "1h" },
  "30d": { label: "30 days", ms: 30 * 24 * 3600e3, bucket: "6h" },
};
const BUCKET_MS = { "15m": 15 * 60e3, "1h": 3600e3, "6h": 6 * 3600e3 };
const BP = ["systolic_bp", "diastolic_bp", "mean_arterial_pressure"];
const STALE_MS = 24 * 3600e3;
const GAP_MS = 26 * 3600e3; // a line is broken only where a whole day of readings is missing

/** Chart groups: blood pressure together, every other metric on its own. */
export function chartGroups(metrics) {
  const groups = [];
  const bp = BP.filter((m) => metrics.includes(m));
  for (const metric of sortMetrics(metrics)) {
    if (BP.includes(metric)) {
      if (metric === bp[0]) groups.push({ key: "blood_pressure", title: "Blood pressure", metrics: bp });
    } else {
      groups.push({ key: metric, title: metricLabel(metric), metrics: [metric] });
    }
  }
  return groups;
}

function thresholdLines(metric, limits) {
  if (!limits) return [];
  const bounds = [["low", "warning", "below"], ["high", "warning", "above"], ["critical_low", "critical", "below"], ["critical_high", "critical", "above"]];
  return bounds.filter(([key]) => limits[key] !== null && limits[key] !== undefined).map(([key, level, side]) => ({
    value: limits[key],
    cls: `limit-${level} limit-${metric}`,
    label: `${metricLabel(metric)}: ${level} ${side} ${limits[key]}`,
    inDomain: key === "low" || key === "high",
  }));
}

function thresholdMap(payload) {
  const rows = Array.isArray(payload) ? payload : payload?.thresholds ?? [];
  if (!Array.isArray(rows)) return typeof rows === "object" && rows ? rows : {};
  return Object.fromEntries(rows.filter((r) => r && r.metric && r.enabled !== false).map((r) => [r.metric, r]));
}

async function patientAlerts(api, id) {
  const page = await api.get("/v1/alerts", { patient_id: id, limit: 500 }).catch(() => ({ alerts: [] }));
  return page.alerts || [];
}

/** Latest-value tiles; systolic and diastolic measured together show as one "120/80" tile. */
export function tiles(latest) {
  const by = Object.fromEntries(latest.map((v) => [v.metric, v]));
  const out = [];
  for (const metric of sortMetrics(latest.map((v) => v.metric))) {
    const v = by[metric];
    if (metric === "systolic_bp" && by.diastolic_bp && by.diastolic_bp.measured_at === v.measured_at) {
      out.push({ ...v, metric: "blood_pressure", label: "Blood pressure", diastolic: by.diastolic_bp.value,
        text: `${formatNumber("systolic_bp", v.value)}/${formatNumber("diastolic_bp", by.diastolic_bp.value)} ${displayUnit("systolic_bp", v.unit)}` });
    } else if (!(metric === "diastolic_bp" && by.systolic_bp && by.systolic_bp.measured_at === v.measured_at)) {
      out.push({ ...v, label: metricLabel(metric), text: formatValue(metric, v.value, v.unit) });
    }
  }
  return out;
}

/** "critical", "warning" or "" for a value against the patient's thresholds. */
export function rangeStatus(value, limits) {
  if (!limits || limits.enabled === false || value === null || value === undefined) return "";
  const below = (bound) => bound !== null && bound !== undefined && value < bound;
  const above = (bound) => bound !== null && bound !== undefined && value > bound;
  if (below(limits.critical_low) || above(limits.critical_high)) return "critical";
  if (below(limits.low) || above(limits.high)) return "warning";
  return "";
}

function vitalTile(v, now, thresholds) {
  const stale = now - new Date(v.measured_at).getTime() > STALE_MS;
  const parts = v.metric === "blood_pressure"
    ? [rangeStatus(v.value, thresholds.systolic_bp), rangeStatus(v.diastolic, thresholds.diastolic_bp)]
    : [rangeStatus(v.value, thresholds[v.metric])];
  const status = parts.includes("critical") ? "critical" : parts.includes("warning") ? "warning" : "";
  return h("li", { class: ["tile", stale && "tile-stale", status && `tile-${status}`], dataset: { metric: v.metric } },
    h("span", { class: "tile-label" }, v.label),
    h("span", { class: "tile-value" }, v.text,
      status ? h("span", { class: ["pill", `pill-${status}`] }, status === "critical" ? "critical" : "out of range") : null),
    h("time", { class: "tile-age", datetime: v.measured_at, title: dateTime(v.measured_at) },
      `${ago(v.measured_at, now)}${stale ? " (stale)" : ""}`));
}

function coverageStrip(detail) {
  const have = new Set(detail.coverage_days);
  const today = new Date();
  const cells = [];
  for (let n = 29; n >= 0; n -= 1) {
    const d = new Date(today.getFullYear(), today.getMonth(), today.getDate() - n);
    const key = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    const label = d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
    cells.push(h("li", { class: have.has(key) ? "day-yes" : "day-no", title: `${label}: ${have.has(key) ? "readings" : "no readings"}` }));
  }
  return h("ol", { class: "coverage-strip", "aria-hidden": "true" }, cells);
}

function when(at) {
  return at ? h("time", { datetime: at, title: dateTime(at) }, ago(at)) : "never";
}

function devicesTable(devices) {
  if (!devices.length) return h("p", { class: "muted" }, "No devices assigned.");
  return h("div", { class: "table-wrap" }, h("table", { class: "devices-table" },
    h("caption", { class: "visually-hidden" }, "Devices assigned to this patient"),
    h("thead", {}, h("tr", {}, ["Device", "Type", "Model", "Battery", "Last reading", "Last seen"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, devices.map((d) => h("tr", {},
      h("th", { scope: "row" }, h("code", {}, d.id)),
      h("td", {}, d.type),
      h("td", {}, [d.manufacturer, d.model].filter(Boolean).join(" ") || "\u2014"),
      h("td", { class: d.battery_level !== null && d.battery_level !== undefined && d.battery_level <= 20 ? "battery-low" : "" },
        d.battery_level === null || d.battery_level === undefined ? "\u2014" : `${d.battery_level}%${d.battery_level <= 20 ? " (low)" : ""}`),
      h("td", {}, when(d.last_reading_at)),
      h("td", {}, when(d.last_seen_at)))))));
}

export function patientView(container, session, id, query) {
  const range = RANGES[query.get("range")] ? query.get("range") : "24h";
  const charts = h("div", { class: "charts", "aria-busy": "true" });
  const alertsBox = h("ol", { class: "alert-list alert-list-compact", "aria-label": "Alert history" });
  let alerts = [];
  let thresholds = {};
  let metrics = [];
  let latest = [];
  let controller = new AbortController();
  let billing = null;

  const rangeButtons = h("div", { class: "segmented", role: "group", "aria-label": "Chart range" },
    Object.entries(RANGES).map(([key, r]) => h("a", {
      class: "segment", href: `#/patients/${encodeURIComponent(id)}?range=${key}`, "aria-current": key === range ? "true" : undefined,
    }, r.label)));

  const drawAlerts = () => {
    const merged = new Map(alerts.map((a) => [String(a.id), a]));
    for (const a of session.store.alerts.values()) if (a.patient_id === id) merged.set(String(a.id), a);
    alerts = [...merged.values()];
    const ordered = [...alerts].sort((a, b) => {
      const activeA = a.status !== "resolved";
      const activeB = b.status !== "resolved";
      return activeA !== activeB ? (activeA ? -1 : 1) : activeA ? compareAlerts(a, b) : new Date(b.opened_at) - new Date(a.opened_at);
    });
    replace(alertsBox, ordered.length ? ordered.slice(0, 50).map((a) => alertItem(a, session, { showPatient: false }))
      : h("li", { class: "empty" }, "No alerts for this patient."));
  };

  const drawCharts = async () => {
    controller.abort();
    controller = new AbortController();
    const r = RANGES[range];
    const until = Date.now();
    const since = until - r.ms;
    if (!metrics.length) {
      charts.removeAttribute("aria-busy");
      replace(charts, h("p", { class: "muted" }, "No readings yet."));
      return;
    }
    let page;
    try {
      page = await session.api.get(`/v1/patients/${encodeURIComponent(id)}/readings`, {
        metric: metrics.join(","), since: new Date(since).toISOString(), until: new Date(until).toISOString(), bucket: r.bucket,
      }, controller.signal);
    } catch (err) {
      if (err.name !== "AbortError") replace(charts, h("p", { class: "form-error" }, `Could not load readings: ${err.message}`));
      return;
    }
    const byMetric = {};
    for (const b of page.buckets || []) {
      (byMetric[b.metric] ||= []).push({ t: new Date(b.bucket_start).getTime(), min: b.min, max: b.max, avg: b.avg, count: b.count });
    }
    const units = Object.fromEntries(latest.map((v) => [v.metric, v.unit]));
    const figures = chartGroups(metrics).map((group) => {
      const series = group.metrics.map((m) => ({ label: group.metrics.length > 1 ? metricLabel(m).replace(" blood pressure", "") : metricLabel(m), cls: `series-${m}`, points: byMetric[m] || [] }));
      const count = series.reduce((n, line) => n + line.points.reduce((k, p) => k + p.count, 0), 0);
      // An alert is marked where its condition began (measured time), not when it was processed.
      // (A blood-pressure alert, one per measurement, has the group's own key as its metric.)
      const markers = alerts.filter((a) => a.metric === group.key || group.metrics.includes(a.metric)).map((a) => {
        const at = a.onset_at || a.opened_at;
        return { t: new Date(at).getTime(), severity: a.severity, label: `${a.severity}: ${alertTitle(a)} (${dateTime(at)})` };
      });
      // One series: the thresholds as shaded bands. Several (blood pressure): one dashed line
      // per bound and series, as bands of one would mislead about the other.
      const single = group.metrics.length === 1;
      const lines = single ? [] : group.metrics.flatMap((m) => thresholdLines(m, thresholds[m]));
      const body = count ? lineChart({
        title: `${group.title}, last ${r.label}`, metric: group.metrics[0], unit: units[group.metrics[0]], since, until,
        series, limits: single ? thresholds[group.metrics[0]] || {} : {}, lines, markers,
        gapMs: Math.max(BUCKET_MS[r.bucket] * 4, GAP_MS),
      }) : h("p", { class: "muted chart-empty" }, `No readings in the last ${r.label}.`);
      return h("section", { class: "chart-card", dataset: { chart: group.key, points: String(count) }, "aria-labelledby": `chart-${group.key}` },
        h("h3", { id: `chart-${group.key}` }, group.title,
          count ? h("span", { class: "chart-count" }, ` \u00b7 ${count} reading${count === 1 ? "" : "s"}`) : null),
        body);
    });
    charts.removeAttribute("aria-busy");
    replace(charts, figures);
  };

  const load = async () => {
    let detail;
    try {
      detail = await session.api.get(`/v1/dashboard/patients/${encodeURIComponent(id)}`, { tz: session.tz });
    } catch (err) {
      replace(container, h("h1", {}, "Patient"), h("p", { class: "form-error", role: "alert" },
        err.status === 404 ? "This patient does not exist or is not in your clinic." : `Could not load the patient: ${err.message}`),
      h("p", {}, h("a", { href: "#/patients" }, "Back to patients")));
      return;
    }
    [alerts, thresholds] = await Promise.all([
      patientAlerts(session.api, id),
      session.api.get(`/v1/patients/${encodeURIComponent(id)}/thresholds`).then(thresholdMap).catch(() => ({})),
    ]);
    latest = detail.latest;
    metrics = detail.latest.map((v) => v.metric);
    const now = Date.now();
    billing?.stop();
    billing = billingPanel(session, detail);
    replace(container,
      h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, h("a", { href: "#/patients" }, "Patients"), " / ", detail.display_name),
      h("div", { class: "view-head patient-head" },
        h("h1", {}, detail.display_name),
        h("p", { class: "patient-ids" }, `MRN ${detail.mrn}`, detail.fhir_patient_id ? ` \u00b7 FHIR ${detail.fhir_patient_id}` : "", ` \u00b7 clinic ${detail.clinic}`),
        detail.attention.length ? reasons(detail.attention) : null),
      h("section", { "aria-labelledby": "latest-title" },
        h("h2", { id: "latest-title" }, "Latest vitals"),
        detail.latest.length ? h("ul", { class: "tiles" }, tiles(detail.latest).map((v) => vitalTile(v, now, thresholds)))
          : h("p", { class: "muted" }, "No readings yet.")),
      h("section", { "aria-labelledby": "coverage-title", class: "coverage-section" },
        h("h2", { id: "coverage-title" }, "Days with readings in the last 30 days"),
        h("p", { class: "coverage-count", id: "coverage-count" }, coverageMeter(detail.days_with_readings_30d)),
        coverageStrip(detail)),
      billing.element,
      h("section", { "aria-labelledby": "trends-title" },
        h("div", { class: "section-head" }, h("h2", { id: "trends-title" }, "Trends"), rangeButtons),
        charts),
      ecgSection(session, id),
      h("div", { class: "columns" },
        h("section", { "aria-labelledby": "alerts-title" },
          h("h2", { id: "alerts-title" }, "Alerts"),
          h("p", {}, h("a", { href: `#/alerts?status=all&patient=${encodeURIComponent(id)}` }, "Open in the alert inbox")),
          alertsBox),
        h("section", { "aria-labelledby": "devices-title" },
          h("h2", { id: "devices-title" }, "Devices"), devicesTable(detail.devices))),
    );
    drawAlerts();
    await drawCharts();
  };

  replace(container, h("p", { class: "muted", role: "status" }, "Loading patient\u2026"));
  load();
  const unsubscribe = session.store.subscribe((change) => {
    if (change.alert && change.alert.patient_id === id && alertsBox.isConnected) {
      drawAlerts();
      if (change.type === "new") drawCharts();
    }
  });
  const ticker = setInterval(() => { if (charts.isConnected) drawCharts(); }, 60000);
  return () => { unsubscribe(); clearInterval(ticker); controller.abort(); billing?.stop(); };
}
