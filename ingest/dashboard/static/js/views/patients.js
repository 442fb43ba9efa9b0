// Patients list: who needs attention first (open critical alerts, missing data), with search.

import { debounce, h, replace } from "../dom.js";
import { ago, dateTime, displayUnit, formatNumber, formatValue, shortLabel } from "../format.js";
import { ehrLinkCell, importForm } from "./ehr-link.js";

const KEY_VITALS = ["heart_rate", "blood_pressure", "spo2", "body_temperature", "body_weight", "blood_glucose"];
export const COVERAGE_TARGET = 16; // days with readings per 30 that RPM programs commonly require

export function vitalsText(latest) {
  const by = Object.fromEntries(latest.map((v) => [v.metric, v]));
  const parts = [];
  for (const key of KEY_VITALS) {
    if (key === "blood_pressure") {
      if (by.systolic_bp && by.diastolic_bp) parts.push(`BP ${formatNumber("systolic_bp", by.systolic_bp.value)}/${formatNumber("diastolic_bp", by.diastolic_bp.value)} ${displayUnit("systolic_bp", by.systolic_bp.unit)}`);
    } else if (by[key]) {
      parts.push(`${shortLabel(key)} ${formatValue(key, by[key].value, by[key].unit)}`);
    }
  }
  return parts.join(" \u00b7 ");
}

export function coverageMeter(days) {
  const met = days >= COVERAGE_TARGET;
  return h("span", { class: ["coverage", met ? "coverage-met" : "coverage-short"] },
    h("meter", { min: "0", max: "30", low: String(COVERAGE_TARGET - 0.5), optimum: "30", value: String(days), "aria-hidden": "true" }),
    h("span", {}, `${days}/30 days`));
}

export function reasons(list) {
  return h("ul", { class: "reasons" }, list.map((r) => h("li", {
    class: ["reason", /critical/.test(r) ? "reason-critical" : /warning/.test(r) ? "reason-warning" : "reason-data"],
  }, r)));
}

function attention(patient) {
  if (!patient.attention.length) return h("span", { class: "muted" }, "No concerns");
  return reasons(patient.attention);
}

export function patientsView(container, session, query) {
  const search = h("input", { id: "patient-search", type: "search", name: "q", value: query.get("q") || "", autocomplete: "off", maxlength: "200" });
  const status = h("p", { class: "summary", role: "status" });
  const body = h("tbody");
  const table = h("table", { class: "patients-table" },
    h("caption", { class: "visually-hidden" }, "Patients, the ones needing attention first"),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Patient"),
      h("th", { scope: "col" }, "Needs attention"),
      h("th", { scope: "col" }, "Latest vitals"),
      h("th", { scope: "col" }, "Last reading"),
      h("th", { scope: "col" }, "Days with readings"),
      h("th", { scope: "col" }, "EHR"))),
    body);
  container.append(
    h("div", { class: "view-head" }, h("h1", {}, "Patients"), status),
    h("form", { class: "filters", role: "search", onsubmit: (ev) => ev.preventDefault() },
      h("div", { class: "field field-wide" },
        h("label", { for: "patient-search" }, "Search by name or MRN"), search)),
    session.me?.role === "admin" ? importForm(session, () => load()) : null,
    h("div", { class: "table-wrap" }, table),
  );

  let controller = null;
  const load = async () => {
    controller?.abort();
    controller = new AbortController();
    const q = search.value.trim();
    try {
      const page = await session.api.get("/v1/dashboard/patients", { q: q || undefined, tz: session.tz }, controller.signal);
      if (!q) session.patients = new Map(page.patients.map((p) => [p.id, p]));
      draw(page.patients, q);
    } catch (err) {
      if (err.name !== "AbortError") status.textContent = `Could not load patients: ${err.message}`;
    }
  };

  const draw = (patients, q) => {
    status.textContent = `${patients.length} patient${patients.length === 1 ? "" : "s"}${q ? ` matching \u201c${q}\u201d` : ""}`;
    replace(body, patients.length ? patients.map((p) => h("tr", {
      class: [p.open_alerts.critical && "row-critical", p.open_alerts.warning && !p.open_alerts.critical && "row-warning"],
      dataset: { patientId: p.id },
    },
    h("th", { scope: "row" },
      h("a", { href: `#/patients/${encodeURIComponent(p.id)}` }, p.display_name),
      h("span", { class: "mrn" }, `MRN ${p.mrn}`)),
    h("td", {}, attention(p)),
    h("td", { class: "vitals" }, vitalsText(p.latest) || h("span", { class: "muted" }, "\u2014")),
    h("td", {}, p.last_reading_at ? h("time", { datetime: p.last_reading_at, title: dateTime(p.last_reading_at) }, ago(p.last_reading_at)) : h("span", { class: "muted" }, "never")),
    h("td", {}, coverageMeter(p.days_with_readings_30d)),
    ehrLinkCell(session, p),
    )) : h("tr", {}, h("td", { colspan: "6", class: "empty" }, "No patients found.")));
  };

  search.addEventListener("input", debounce(() => {
    const q = search.value.trim();
    history.replaceState(null, "", q ? `#/patients?q=${encodeURIComponent(q)}` : "#/patients");
    load();
  }, 250));
  load();
  const reload = debounce(load, 1500);
  const unsubscribe = session.store.subscribe((change) => { if (change.type !== "state") reload(); });
  const ticker = setInterval(load, 60000);
  return () => { unsubscribe(); clearInterval(ticker); controller?.abort(); };
}
