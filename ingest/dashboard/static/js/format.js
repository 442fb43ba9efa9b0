// Metric names, units and time formatting shared by the views.

export const METRICS = {
  heart_rate: { label: "Heart rate", short: "HR", digits: 0 },
  respiratory_rate: { label: "Respiratory rate", short: "RR", digits: 0 },
  spo2: { label: "Oxygen saturation", short: "SpO\u2082", digits: 0 },
  body_temperature: { label: "Temperature", short: "Temp", digits: 1 },
  systolic_bp: { label: "Systolic blood pressure", short: "SBP", digits: 0 },
  diastolic_bp: { label: "Diastolic blood pressure", short: "DBP", digits: 0 },
  mean_arterial_pressure: { label: "Mean arterial pressure", short: "MAP", digits: 0 },
  body_weight: { label: "Weight", short: "Wt", digits: 1 },
  blood_glucose: { label: "Blood glucose", short: "Glu", digits: 0 },
  steps: { label: "Steps", short: "Steps", digits: 0 },
};

// The order vitals are shown in; anything else follows alphabetically.
export const METRIC_ORDER = [
  "heart_rate", "systolic_bp", "diastolic_bp", "spo2", "body_temperature", "respiratory_rate",
  "body_weight", "blood_glucose", "mean_arterial_pressure", "steps",
];

const UNITS = { "mm[Hg]": "mmHg", Cel: "\u00b0C", "/min": "/min", "{steps}": "steps", "%": "%" };

export function metricLabel(metric) {
  return METRICS[metric]?.label ?? metric.replaceAll("_", " ");
}

export function unitLabel(unit) {
  return UNITS[unit] ?? unit ?? "";
}

export function formatNumber(metric, value) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "\u2014";
  const digits = METRICS[metric]?.digits ?? 1;
  return Number(value).toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function formatValue(metric, value, unit) {
  const u = unitLabel(unit);
  return u ? `${formatNumber(metric, value)} ${u}` : formatNumber(metric, value);
}

export function sortMetrics(names) {
  const rank = (m) => { const i = METRIC_ORDER.indexOf(m); return i < 0 ? 100 : i; };
  return [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** "just now", "5 min ago", "3 h ago", "2 d ago". */
export function ago(when, now = Date.now()) {
  if (!when) return "never";
  const seconds = Math.round((now - new Date(when).getTime()) / 1000);
  if (seconds < 45) return seconds < -60 ? "in the future" : "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.round(hours / 24)} d ago`;
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
