// One alert as a list item, with acknowledge / resolve actions behind a note dialog.

import { ruleKind } from "../api.js";
import { h, toast } from "../dom.js";
import { ago, dateTime, formatValue, metricLabel } from "../format.js";

// Labels and title templates come from the service's rule kinds (GET /v1/alert-rule-kinds, loaded
// once at sign-in through the api module); a kind it does not describe reads as its name.
const DEFAULT_TITLE = "{metric}{value} \u2014 {label}";

export function kindLabel(kind) {
  return ruleKind(kind)?.label ?? String(kind || "alert").replaceAll("_", " ");
}

/** One-line description of what the alert is about. */
export function alertTitle(alert) {
  if (alert.message) {
    // "spo2 85 % below critical low 86" -> "Oxygen saturation 85 % below critical low 86"
    const text = alert.metric ? alert.message.replace(alert.metric, metricLabel(alert.metric)) : alert.message;
    return text.charAt(0).toUpperCase() + text.slice(1);
  }
  const metric = alert.metric ? metricLabel(alert.metric) : "Alert";
  const value = alert.value !== undefined && alert.value !== null ? ` ${formatValue(alert.metric, alert.value, alert.unit)}` : "";
  const parts = { metric, value, label: kindLabel(alert.kind) };
  return (ruleKind(alert.kind)?.title ?? DEFAULT_TITLE).replace(/\{(metric|value|label)\}/g, (_, name) => parts[name]);
}

function timeEl(when) {
  return h("time", { datetime: new Date(when).toISOString(), title: dateTime(when) }, ago(when));
}

function trail(alert) {
  const items = [];
  if (alert.acknowledged_at) {
    items.push(h("li", {}, "Acknowledged ", timeEl(alert.acknowledged_at),
      alert.acknowledged_by ? ` by ${alert.acknowledged_by}` : "",
      alert.acknowledge_note || alert.ack_note ? h("q", {}, alert.acknowledge_note || alert.ack_note) : null));
  }
  if (alert.resolved_at) {
    items.push(h("li", {}, "Resolved ", timeEl(alert.resolved_at),
      alert.resolved_by ? ` by ${alert.resolved_by}` : "",
      alert.resolve_note || alert.resolution_note ? h("q", {}, alert.resolve_note || alert.resolution_note) : null));
  }
  if (alert.note && !items.length) items.push(h("li", {}, "Note: ", h("q", {}, alert.note)));
  return items.length ? h("ul", { class: "alert-trail" }, items) : null;
}

/** Ask for an optional note, then POST the action; resolves to the updated alert or null. */
export function confirmAction(api, alert, action, patientName) {
  const verb = action === "acknowledge" ? "Acknowledge" : "Resolve";
  return new Promise((resolve) => {
    const note = h("textarea", { id: "action-note", name: "note", rows: "3", maxlength: "2000" });
    const error = h("p", { class: "form-error", role: "alert" });
    const submit = h("button", { type: "submit", class: "button-primary" }, verb);
    const cancel = h("button", { type: "button", class: "button-quiet", value: "cancel" }, "Cancel");
    const form = h("form", { method: "dialog", class: "dialog-form" },
      h("h2", { id: "dialog-title" }, `${verb} alert`),
      h("p", {}, h("strong", {}, patientName), ": ", alertTitle(alert)),
      h("label", { for: "action-note" }, "Note (optional)"),
      note, error,
      h("div", { class: "dialog-actions" }, cancel, submit));
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": "dialog-title" }, form);
    let result = null;
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => { dialog.remove(); resolve(result); });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      try {
        const body = note.value.trim() ? { note: note.value.trim() } : {};
        result = await api.post(`/v1/alerts/${encodeURIComponent(alert.id)}/${action}`, body);
        toast(action === "acknowledge" && result?.status === "resolved"
          ? "Alert acknowledged and resolved: its condition had already cleared."
          : `Alert ${action === "acknowledge" ? "acknowledged" : "resolved"}.`, "success");
        dialog.close();
      } catch (err) {
        error.textContent = err.message;
        submit.disabled = false;
      }
    });
    document.body.append(dialog);
    dialog.showModal();
    note.focus();
  });
}

/** A latched alert: its condition cleared before anyone acknowledged it (still open, waiting). */
export function needsReview(alert) {
  return Boolean(alert.cleared_at) && alert.status === "open";
}

export function alertItem(alert, session, { fresh = false, showPatient = true } = {}) {
  const actions = h("div", { class: "alert-actions" });
  const act = (action) => async () => {
    const updated = await confirmAction(session.api, alert, action, session.patientName(alert.patient_id));
    if (updated) session.store.upsert(updated);
  };
  if (alert.status === "open") {
    actions.append(h("button", { type: "button", class: "button", onclick: act("acknowledge"), "aria-label": `Acknowledge: ${alertTitle(alert)}` }, "Acknowledge"));
  }
  if (alert.status === "open" || alert.status === "acknowledged") {
    actions.append(h("button", { type: "button", class: "button", onclick: act("resolve"), "aria-label": `Resolve: ${alertTitle(alert)}` }, "Resolve"));
  }
  const severity = alert.severity || "info";
  const review = needsReview(alert);
  return h("li", {
    class: ["alert", `alert-${severity}`, `status-${alert.status}`, fresh && "alert-fresh", review && "alert-cleared"],
    dataset: { alertId: String(alert.id), severity, status: alert.status },
  },
  h("div", { class: "alert-main" },
    h("span", { class: ["pill", `pill-${severity}`] }, severity),
    h("span", { class: "alert-title" }, alertTitle(alert)),
    review ? h("span", { class: ["pill", "pill-cleared"] }, "cleared \u2014 needs review") : null,
    showPatient ? h("a", { class: "alert-patient", href: `#/patients/${encodeURIComponent(alert.patient_id)}` }, session.patientName(alert.patient_id)) : null,
  ),
  h("div", { class: "alert-meta" },
    h("span", {}, "Opened ", timeEl(alert.opened_at)),
    h("span", { class: ["status", `status-label-${alert.status}`] }, alert.status),
    alert.escalated_at ? h("span", { class: "escalated" }, "escalated") : null,
    review ? h("span", { class: "cleared-note" }, "Condition cleared ", timeEl(alert.cleared_at),
      " \u2014 acknowledge to close") : null,
  ),
  trail(alert),
  actions);
}
