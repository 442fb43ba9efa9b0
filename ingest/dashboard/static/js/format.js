// Metric labels, display units, numbers and ages shared by the views.
//
// How a person reads each metric is the service's one table (devices/data/display.csv, served at
// GET /v1/dashboard/metrics and loaded once at sign-in through the api module): UCUM codes stay in
// the data (mm[Hg], Cel), people read mmHg, °C, bpm. Before it loaded (or if it could not be),
// a metric reads as its name and a unit as stored.

const table = { metrics: new Map(), order: [], units: {} };

/** Install the display table ({metrics: [{metric, label, short, unit, ucum_unit, digits}], units}). */
export function setMetricDisplays(page) {
  table.metrics = new Map((page.metrics || []).map((m) => [m.metric, m]));
  table.order = (page.metrics || []).map((m) => m.metric);
  table.units = page.units || {};
}

export function metricLabel(metric) {
  return table.metrics.get(metric)?.label ?? String(metric || "").replaceAll("_", " ");
}

export function shortLabel(metric) {
  return table.metrics.get(metric)?.short ?? metricLabel(metric);
}

/** The unit a person reads for a value of ``metric`` stored in ``unit`` (a UCUM code). */
export function displayUnit(metric, unit) {
  return table.metrics.get(metric)?.unit ?? table.units[unit] ?? unit ?? "";
}

export function formatNumber(metric, value) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "\u2014";
  const digits = table.metrics.get(metric)?.digits ?? 1;
  return Number(value).toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function formatValue(metric, value, unit) {
  const u = displayUnit(metric, unit);
  return u ? `${formatNumber(metric, value)} ${u}` : formatNumber(metric, value);
}

/** Metrics in the table's order (how people see them); anything else follows alphabetically. */
export function sortMetrics(names) {
  const rank = (m) => { const i = table.order.indexOf(m); return i < 0 ? table.order.length : i; };
  return [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/**
 * How long ago, for people: "under 1 min", "5 min", "3 h", "4 d". The one rule (docs/alerts.md),
 * the same as the service's devices.display.age_text: minutes below an hour, hours below two
 * days, days from then on, each rounded up so data never reads fresher than it is. Both are
 * tested against tests/support/age_cases.json.
 */
export function ageText(seconds) {
  if (seconds < 60) return "under 1 min";
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.ceil(seconds / 3600);
  if (hours < 48) return `${hours} h`;
  return `${Math.ceil(seconds / 86400)} d`;
}

/** "just now", "5 min ago", "3 h ago", "4 d ago" (ageText). */
export function ago(when, now = Date.now()) {
  if (!when) return "never";
  const seconds = (now - new Date(when).getTime()) / 1000;
  if (seconds < 60) return seconds < -60 ? "in the future" : "just now";
  return `${ageText(seconds)} ago`;
}

export function dateTime(when) {
  if (!when) return "";
  return new Date(when).toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

export function timeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

export const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };

export function severityRank(severity) {
  return SEVERITY_RANK[severity] ?? 3;
}
