// Active alerts (open or acknowledged) kept current from the live stream, shared by every view.

import { severityRank } from "./format.js";

export const ACTIVE = ["open", "acknowledged"];

/** Critical first, then the one waiting longest. */
export function compareAlerts(a, b) {
  return (
    severityRank(a.severity) - severityRank(b.severity) ||
    (ACTIVE.indexOf(a.status) + 1 || 9) - (ACTIVE.indexOf(b.status) + 1 || 9) ||
    new Date(a.opened_at) - new Date(b.opened_at) ||
    String(a.id).localeCompare(String(b.id))
  );
}

/** The alert carried by one stream event, whatever envelope the server wraps it in. */
export function alertFromEvent(event) {
  let data;
  try { data = JSON.parse(event.data); } catch { return null; }
  if (!data || typeof data !== "object") return null;
  const alert = data.alert && typeof data.alert === "object" ? data.alert : data;
  return alert.id !== undefined && alert.patient_id ? alert : null;
}

export class AlertStore {
  constructor(api) {
    this.api = api;
    this.alerts = new Map();
    this.fresh = new Map(); // alert id -> when it arrived live
    this.listeners = new Set();
    this.state = "connecting";
    this.controller = null;
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(change) {
    for (const listener of this.listeners) listener(change);
  }

  /** Arrived live in the last minute (highlighted in the inbox). */
  isFresh(id) {
    const when = this.fresh.get(String(id));
    return when !== undefined && Date.now() - when < 60000;
  }

  active() {
    return [...this.alerts.values()].filter((a) => ACTIVE.includes(a.status)).sort(compareAlerts);
  }

  counts() {
    const counts = { critical: 0, warning: 0, total: 0, unacknowledged: 0 };
    for (const a of this.alerts.values()) {
      if (!ACTIVE.includes(a.status)) continue;
      counts.total += 1;
      if (a.status === "open") counts.unacknowledged += 1;
      if (a.severity in counts) counts[a.severity] += 1;
    }
    return counts;
  }

  async reload() {
    const page = await this.api.get("/v1/alerts", { status: ACTIVE.join(","), limit: 1000 });
    this.alerts = new Map();
    for (const alert of page.alerts || []) this.alerts.set(String(alert.id), alert);
    this.emit({ type: "reload" });
  }

  upsert(alert, { live = false } = {}) {
    const key = String(alert.id);
    const known = this.alerts.get(key);
    this.alerts.set(key, { ...(known || {}), ...alert });
    if (live && !known && ACTIVE.includes(alert.status)) this.fresh.set(key, Date.now());
    this.emit({ type: known ? "update" : "new", alert: this.alerts.get(key), live });
  }

  start() {
    this.stop();
    this.controller = new AbortController();
    const { signal } = this.controller;
    this.reload().catch(() => {});
    this.api.follow("/v1/alerts/stream", {
      signal,
      onEvent: (event) => {
        const alert = alertFromEvent(event);
        if (alert) this.upsert(alert, { live: true });
      },
      onState: (state) => { this.state = state; this.emit({ type: "state", state }); },
      onReconnect: () => { this.reload().catch(() => {}); },
    });
  }

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
  }
}
