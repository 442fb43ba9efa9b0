// Billing words and numbers shared by the patient page's timer panel and the billing page.

import { h } from "../dom.js";

export const CODE_NAMES = {
  99453: "Set-up and education",
  99445: "Device supply, 2\u201315 days",
  99454: "Device supply, 16\u201330 days",
  99470: "Management, first 10 min",
  99457: "Management, first 20 min",
  99458: "Management, each further 20 min",
};

// In the order of the contract's table (object keys that look like numbers would sort).
export const CODES = ["99453", "99445", "99454", "99470", "99457", "99458"];

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** "3 more days for 99454", "8 more minutes for 99457", "an interactive communication for 99470". */
export function progressText(p) {
  if (p.unit === "interactive") return `an interactive communication for ${p.code}`;
  const text = `${plural(p.more, p.unit === "days" ? "more day" : "more minute")} for ${p.code}`;
  return p.reachable === false ? `${text} (not enough days left in this period)` : text;
}

/** "12 Mar" or "12 Mar 2026" from a YYYY-MM-DD date (read as a calendar date, not an instant). */
export function day(iso, { year = false } = {}) {
  const [y, m, d] = iso.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d)).toLocaleDateString(undefined, {
    day: "numeric", month: "short", year: year ? "numeric" : undefined, timeZone: "UTC",
  });
}

export function periodText(p) {
  return `${day(p.start)} \u2013 ${day(p.end)}: ${plural(p.days_with_readings, "day")}`;
}

export function codeChip(c) {
  const units = c.units > 1 ? ` \u00d7${c.units}` : "";
  return h("span", { class: "code-chip", title: CODE_NAMES[c.code] || c.code, dataset: { code: c.code } }, `${c.code}${units}`);
}

/** "2026-03" of a Date in the browser's time zone. */
export function monthOf(date) {
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}`;
}

export const MONTH_RE = /^[0-9]{4}-(0[1-9]|1[0-2])$/;
