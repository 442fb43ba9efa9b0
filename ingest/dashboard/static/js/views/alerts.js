// The alert inbox: active alerts sorted by severity then age, live from the stream, with filters.

import { ACTIVE, compareAlerts } from "../alerts-store.js";
import { h, replace } from "../dom.js";
import { alertItem } from "./alert-item.js";

const STATUSES = [
  ["active", "Active (open or acknowledged)"],
  ["open", "Open"],
  ["acknowledged", "Acknowledged"],
  ["resolved", "Resolved"],
  ["all", "All"],
];
const SEVERITIES = [["", "Any severity"], ["critical", "Critical"], ["warning", "Warning"]];

function select(id, label, options, value, onChange) {
  const el = h("select", { id, name: id, onchange: (ev) => onChange(ev.target.value) },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  return h("div", { class: "field" }, h("label", { for: id }, label), el);
}

export function alertsView(container, session, query) {
  const filters = {
    status: query.get("status") || "active",
    severity: query.get("severity") || "",
    patient: query.get("patient") || "",
  };
  const statuses = filters.status === "active" ? ACTIVE
    : filters.status === "all" ? ["open", "acknowledged", "resolved"] : [filters.status];
  const history = new Map(); // resolved alerts fetched for this view (the store keeps active ones)
  const list = h("ol", { class: "alert-list", "aria-label": "Alerts" });
  const summary = h("p", { class: "summary", role: "status" });
  const setFilter = (key) => (value) => {
    const next = new URLSearchParams({ ...filters, [key]: value });
    for (const [k, v] of [...next]) if (!v || (k === "status" && v === "active")) next.delete(k);
    location.hash = `#/alerts${next.toString() ? `?${next}` : ""}`;
  };
  const patients = [...session.patients.values()].sort((a, b) => a.display_name.localeCompare(b.display_name));

  container.append(
    h("div", { class: "view-head" },
      h("h1", {}, "Alert inbox"),
      summary),
    h("form", { class: "filters", role: "search", "aria-label": "Filter alerts", onsubmit: (ev) => ev.preventDefault() },
      select("filter-status", "Status", STATUSES, filters.status, setFilter("status")),
      select("filter-severity", "Severity", SEVERITIES, filters.severity, setFilter("severity")),
      select("filter-patient", "Patient", [["", "All patients"], ...patients.map((p) => [p.id, p.display_name])], filters.patient, setFilter("patient"))),
    list,
  );

  const visible = () => {
    const merged = new Map(history);
    for (const a of session.store.alerts.values()) merged.set(String(a.id), a);
    return [...merged.values()]
      .filter((a) => statuses.includes(a.status))
      .filter((a) => !filters.severity || a.severity === filters.severity)
      .filter((a) => !filters.patient || a.patient_id === filters.patient)
      .sort(compareAlerts);
  };

  const draw = () => {
    const alerts = visible();
    const critical = alerts.filter((a) => a.severity === "critical").length;
    summary.textContent = alerts.length
      ? `${alerts.length} alert${alerts.length === 1 ? "" : "s"}${critical ? `, ${critical} critical` : ""}`
      : "";
    const focused = document.activeElement?.closest?.("[data-alert-id]");
    const focusedId = focused && list.contains(focused) ? focused.dataset.alertId : null;
    replace(list, alerts.length
      ? alerts.map((a) => alertItem(a, session, { fresh: session.store.isFresh(a.id) }))
      : h("li", { class: "empty" }, filters.status === "active" ? "No active alerts. New alerts appear here as they happen." : "No alerts match these filters."));
    if (focusedId) {
      const again = [...list.querySelectorAll("[data-alert-id]")].find((li) => li.dataset.alertId === focusedId);
      (again?.querySelector("button, a") || list.querySelector("button, a"))?.focus();
    }
  };

  const needHistory = statuses.includes("resolved");
  if (needHistory) {
    session.api.get("/v1/alerts", { status: "resolved", patient_id: filters.patient || undefined })
      .then((page) => { for (const a of page.alerts || []) history.set(String(a.id), a); draw(); })
      .catch((err) => { summary.textContent = `Could not load resolved alerts: ${err.message}`; });
  }
  draw();
  const unsubscribe = session.store.subscribe((change) => {
    if (change.type === "state") return;
    if (change.alert && needHistory) history.set(String(change.alert.id), change.alert);
    draw();
  });
  const ticker = setInterval(draw, 30000); // keep "n min ago" current
  return () => { unsubscribe(); clearInterval(ticker); };
}
