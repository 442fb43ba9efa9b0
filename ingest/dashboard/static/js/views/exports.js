// Export status for every destination (the EHR's FHIR API, an HL7 interface engine, a PACS):
// items waiting, sent or failed, why the failures failed, and which patients hold exports back
// because they have no FHIR Patient id yet.

import { h, replace, toast } from "../dom.js";
import { ago, dateTime, metricLabel } from "../format.js";

const STATES = [
  ["pending", "Pending", "Queued for the EHR"],
  ["waiting", "Waiting", "Held until the patient has a FHIR id"],
  ["sent", "Sent", "Delivered to the EHR"],
  ["failed", "Failed", "Refused by the EHR; needs attention"],
];

function when(at) {
  return at ? h("time", { datetime: at, title: dateTime(at) }, ago(at)) : "\u2014";
}

const DESTINATIONS = { fhir: "EHR (FHIR)", hl7: "Interface engine (HL7 v2)", dicom: "PACS (DICOM)" };

function destination(item) {
  return DESTINATIONS[item.destination] || item.destination || "EHR (FHIR)";
}

function what(item) {
  if (item.kind === "bp_panel") return "Blood pressure panel";
  if (item.kind === "ecg") return "ECG strip";
  if (item.kind === "flag") return "Alert (Flag)";
  return (item.metrics || []).map(metricLabel).join(", ") || item.metric;
}

function table(caption, headings, rows) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows)));
}

export function exportsView(container, session) {
  const cards = h("ul", { class: "stat-cards", "aria-label": "Export counts" });
  const failures = h("div", { class: "failures" });
  const waiting = h("div", { class: "waiting" });
  const status = h("p", { class: "summary", role: "status" });
  container.append(
    h("div", { class: "view-head" }, h("h1", {}, "Exports"), status),
    h("p", { class: "lede" }, "Readings go to the clinic's EHR as FHIR R4 Observations (and, where configured, to its interface engine as HL7 v2 and its PACS as DICOM), each exactly once per destination."),
    cards,
    h("section", { "aria-labelledby": "failures-title" }, h("h2", { id: "failures-title" }, "Failed exports"), failures),
    h("section", { "aria-labelledby": "waiting-title" }, h("h2", { id: "waiting-title" }, "Patients without a FHIR id"), waiting),
  );

  const retry = async (item) => {
    try {
      await session.api.post(`/v1/exports/${encodeURIComponent(item.id)}/retry`, {});
      toast("Export queued again.", "success");
      load();
    } catch (err) {
      toast(`Could not retry: ${err.message}`, "error");
    }
  };

  const patientLink = (id) => h("a", { href: `#/patients/${encodeURIComponent(id)}` }, session.patientName(id));

  const load = async () => {
    let payload;
    try {
      payload = await session.api.get("/v1/exports");
    } catch (err) {
      status.textContent = err.status === 404 ? "Export status is not available on this service." : `Could not load export status: ${err.message}`;
      return;
    }
    status.textContent = payload.enabled ? "Connected to the EHR." : "No EHR is configured (RPM_FHIR_BASE_URL): exports wait until one is.";
    const counts = payload.counts || {};
    replace(cards, STATES.map(([key, label, help]) => h("li", { class: ["stat", `stat-${key}`], dataset: { state: key } },
      h("span", { class: "stat-value" }, Number(counts[key] ?? 0).toLocaleString()),
      h("span", { class: "stat-label" }, label),
      h("span", { class: "stat-help" }, help))));

    const failed = payload.failures || [];
    replace(failures, failed.length ? table("Failed exports with their reasons",
      ["Reading", "Destination", "Patient", "Measured", "Reason", "Attempts", "Last attempt", ""],
      failed.map((item) => h("tr", { dataset: { exportId: String(item.id), destination: item.destination || "fhir" } },
        h("th", { scope: "row" }, what(item), h("span", { class: "mrn" }, h("code", {}, item.device_id))),
        h("td", {}, destination(item)),
        h("td", {}, patientLink(item.patient_id)),
        h("td", {}, when(item.measured_at)),
        h("td", { class: "reason-text" }, item.reason || "unknown"),
        h("td", {}, String(item.attempts)),
        h("td", {}, when(item.updated_at)),
        h("td", {}, h("button", { type: "button", class: "button", onclick: () => retry(item), "aria-label": `Retry export ${item.id}` }, "Retry")))))
      : h("p", { class: "muted" }, "No failed exports."));

    const held = payload.waiting || [];
    replace(waiting, held.length ? table("Patients whose exports wait for a FHIR id",
      ["Patient", "Readings waiting", "Oldest", "Why"],
      held.map((w) => h("tr", {},
        h("th", { scope: "row" }, patientLink(w.patient_id)),
        h("td", {}, Number(w.rows).toLocaleString()),
        h("td", {}, when(w.oldest_measured_at)),
        h("td", { class: "reason-text" }, w.reason))))
      : h("p", { class: "muted" }, "Every patient has a FHIR id."));
  };
  load();
  const ticker = setInterval(load, 15000);
  return () => clearInterval(ticker);
}
