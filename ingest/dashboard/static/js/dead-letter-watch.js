// For administrators only: a banner when devices or topics flood the dead-letter table
// (GET /v1/dead-letters/summary, admin only). Clinicians never call it. Checked at sign-in and
// then every minute while the tab is visible; every value from the API is set as text.

import { clear, h } from "./dom.js";

const SUMMARY_PATH = "/v1/dead-letters/summary";
const LISTING_PATH = "/v1/dead-letters";
const SUMMARIES_PATH = "/v1/dead-letters?summaries=true";
const HOURS = 24;
const EVERY_MS = 60000;

/** The flooding keys, busiest first, with the letters each had summarised (counted, not kept). */
export function floodingKeys(summary) {
  const keys = new Map();
  for (const flood of summary.floods || []) {
    const key = flood.device_id || flood.topic || flood.source;
    const kind = flood.device_id ? "device" : flood.topic ? "topic" : "source";
    const seen = keys.get(key) || { key, kind, suppressed: 0 };
    seen.suppressed += Number(flood.suppressed_count) || 0;
    keys.set(key, seen);
  }
  return [...keys.values()];
}

function plural(n, one, many) {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

function banner(summary, onDismiss) {
  const keys = floodingKeys(summary);
  const total = keys.reduce((sum, k) => sum + k.suppressed, 0);
  return h("section", { class: "admin-banner", "aria-labelledby": "admin-banner-title", dataset: { warning: "dead-letters" } },
    h("h2", { class: "admin-banner-title", id: "admin-banner-title" }, "Dead-letter warning"),
    keys.length ? h("p", {},
      `${plural(keys.length, "device or topic is", "devices or topics are")} flooding the dead letters: `,
      keys.map((k, i) => [i ? ", " : "",
        h("code", { class: "flood-key", dataset: { kind: k.kind } }, k.key),
        ` (${plural(k.suppressed, "letter", "letters")} summarised)`]),
      keys.length > 1 ? `; ${plural(total, "letter", "letters")} summarised in all` : "",
      ` in the last ${HOURS} h (summarised letters were counted, not kept).`) : null,
    h("ul", { class: "admin-banner-warnings" }, summary.warnings.map((w) => h("li", {}, w))),
    h("p", { class: "admin-banner-pointer" },
      "The summaries: ", h("code", {}, `GET ${SUMMARIES_PATH}`), "; every letter: ",
      h("code", {}, `GET ${LISTING_PATH}`), " (admin API; add device_id=\u2026 for one device)."),
    h("button", { type: "button", class: "button-quiet", onclick: onDismiss }, "Dismiss until it changes"));
}

export class DeadLetterWatch {
  /** ``region`` is the page's status region for the banner; it stays empty for clinicians. */
  constructor(api, me, region) {
    this.api = api;
    this.admin = me.role === "admin";
    this.region = region;
    this.timer = null;
    this.running = false;
    this.busy = false;
    this.dismissed = null;
    this.shown = null;
    this.onVisible = () => { if (!document.hidden) this.check(); };
  }

  start() {
    if (!this.admin) return;
    this.running = true;
    this.check();
    this.timer = setInterval(() => { if (!document.hidden) this.check(); }, EVERY_MS);
    document.addEventListener("visibilitychange", this.onVisible);
  }

  stop() {
    this.running = false;
    clearInterval(this.timer);
    this.timer = null;
    document.removeEventListener("visibilitychange", this.onVisible);
    clear(this.region);
  }

  async check() {
    if (!this.running || this.busy) return;
    this.busy = true;
    let summary;
    try {
      summary = await this.api.get(SUMMARY_PATH, { hours: HOURS });
    } catch {
      return; // the next check tries again; the banner keeps what it showed
    } finally {
      this.busy = false;
    }
    if (!this.running) return; // signed out meanwhile
    const signature = JSON.stringify(summary.warnings || []);
    if (!summary.warnings?.length || signature === this.dismissed) {
      this.shown = null;
      clear(this.region);
      return;
    }
    if (signature === this.shown) return; // unchanged: do not announce it again
    this.shown = signature;
    clear(this.region).append(banner(summary, () => {
      this.dismissed = signature;
      this.shown = null;
      clear(this.region);
      document.getElementById("main")?.focus({ preventScroll: true });
    }));
  }
}
