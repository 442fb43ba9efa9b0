// The billing page: the month's RPM report for a clinic (the codes each patient earned, the
// periods ending in the month with their days, the month's minutes), what each patient still
// needs for the next code, filters, and the CSV the clinic's billing system takes.

import { h, replace, toast } from "../dom.js";
import { CODE_NAMES, CODES, MONTH_RE, codeChip, day, monthOf, periodText, progressText } from "./format.js";

const FILTERS = [
  ["all", "All patients"],
  ["billable", "With a code"],
  ["none", "Without a code"],
  ["close", "Close to a code"],
  ...CODES.map((c) => [c, `${c} \u00b7 ${CODE_NAMES[c]}`]),
];

function matches(patient, filter, search) {
  if (search) {
    const q = search.toLowerCase();
    if (!patient.display_name.toLowerCase().includes(q) && !patient.mrn.toLowerCase().includes(q)) return false;
  }
  if (filter === "billable") return patient.codes.length > 0;
  if (filter === "none") return patient.codes.length === 0;
  if (filter === "close") return (patient.progress || []).some((p) => p.reachable !== false && p.unit !== "interactive" && p.more <= (p.unit === "days" ? 3 : 10));
  if (CODES.includes(filter)) return patient.codes.some((c) => c.code === filter);
  return true;
}

function href(params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
  return `#/billing${query.toString() ? `?${query}` : ""}`;
}

export function billingView(container, session, query) {
  const isAdmin = session.me.role === "admin";
  const wanted = {
    month: MONTH_RE.test(query.get("month") || "") ? query.get("month") : "",
    clinic: query.get("clinic") || (isAdmin ? "" : session.me.clinic || ""),
    filter: FILTERS.some(([k]) => k === query.get("filter")) ? query.get("filter") : "all",
    q: query.get("q") || "",
  };
  let report = null;

  const status = h("p", { class: "summary", role: "status" });
  const monthInput = h("input", { type: "month", id: "billing-month", value: wanted.month || monthOf(new Date()), required: true });
  const clinicSelect = h("select", { id: "billing-clinic", disabled: !isAdmin });
  const filterSelect = h("select", { id: "billing-filter" }, FILTERS.map(([k, label]) => h("option", { value: k, selected: k === wanted.filter }, label)));
  const search = h("input", { type: "search", id: "billing-search", value: wanted.q, placeholder: "Name or MRN", autocomplete: "off" });
  const download = h("button", { type: "button", class: "button-primary", id: "billing-csv" }, "Download CSV");
  const totals = h("ul", { class: "stat-cards", "aria-label": "Codes this month" });
  const table = h("div", { class: "table-wrap billing-table-wrap" });

  const go = (changes) => { location.hash = href({ ...wanted, ...changes, filter: (changes.filter ?? wanted.filter) === "all" ? "" : (changes.filter ?? wanted.filter) }); };
  monthInput.addEventListener("change", () => { if (MONTH_RE.test(monthInput.value)) go({ month: monthInput.value }); });
  clinicSelect.addEventListener("change", () => go({ clinic: clinicSelect.value }));
  filterSelect.addEventListener("change", () => { wanted.filter = filterSelect.value; drawTable(); history.replaceState(null, "", href({ ...wanted, filter: wanted.filter === "all" ? "" : wanted.filter })); });
  search.addEventListener("input", () => { wanted.q = search.value.trim(); drawTable(); history.replaceState(null, "", href({ ...wanted, filter: wanted.filter === "all" ? "" : wanted.filter })); });

  container.append(
    h("div", { class: "view-head" }, h("h1", {}, "Billing"), status),
    h("p", { class: "lede" }, "Remote monitoring codes (CPT 2026) earned in the month: device supply per 30-day period (a period counts in the month it ends), treatment management per calendar month. Days are counted in the clinic's time zone."),
    h("form", { class: "filters", role: "search", "aria-label": "Billing filters", onsubmit: (e) => e.preventDefault() },
      h("div", { class: "field" }, h("label", { for: "billing-month" }, "Month"), monthInput),
      h("div", { class: "field" }, h("label", { for: "billing-clinic" }, "Clinic"), clinicSelect),
      h("div", { class: "field" }, h("label", { for: "billing-filter" }, "Show"), filterSelect),
      h("div", { class: "field" }, h("label", { for: "billing-search" }, "Search"), search),
      h("div", { class: "field" }, download)),
    totals,
    table);

  const drawTotals = () => {
    const counts = Object.fromEntries(CODES.map((c) => [c, 0]));
    for (const p of report.patients) for (const c of p.codes) counts[c.code] += c.units;
    replace(totals, CODES.map((c) => h("li", { class: "stat", dataset: { code: c } },
      h("span", { class: "stat-value" }, String(counts[c])),
      h("span", { class: "stat-label" }, c),
      h("span", { class: "stat-help" }, CODE_NAMES[c]))));
  };

  const drawTable = () => {
    if (!report) return;
    const rows = report.patients.filter((p) => matches(p, wanted.filter, wanted.q));
    status.textContent = `${report.patients.length} patient${report.patients.length === 1 ? "" : "s"} monitored in ${report.month} (${report.timezone})` +
      (rows.length !== report.patients.length ? `, ${rows.length} shown` : "");
    if (!rows.length) {
      replace(table, h("p", { class: "muted" }, report.patients.length ? "No patient matches these filters." : "No patient was monitored in this month."));
      return;
    }
    replace(table, h("table", { class: "billing-table" },
      h("caption", { class: "visually-hidden" }, `Billing for ${report.month}`),
      h("thead", {}, h("tr", {}, ["Patient", "Periods ending this month", "Minutes", "Codes", "Still needed"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((p) => h("tr", { dataset: { patientId: p.patient_id, mrn: p.mrn } },
        h("th", { scope: "row" }, h("a", { href: `#/patients/${encodeURIComponent(p.patient_id)}` }, p.display_name), h("span", { class: "mrn" }, `MRN ${p.mrn}`)),
        h("td", { class: "billing-periods" },
          p.periods.length ? h("ul", {}, p.periods.map((x) => h("li", {}, periodText(x)))) : h("span", { class: "muted" }, "none"),
          p.open_period ? h("p", { class: "muted open-period" }, `next period: ${day(p.open_period.start)} \u2013 ${day(p.open_period.end)}, ${p.open_period.days_with_readings} days so far`) : null),
        h("td", { class: "billing-minutes" }, String(p.management_minutes), p.management_minutes && !p.interactive ? h("span", { class: "muted" }, " (not interactive)") : null),
        h("td", { class: "billing-codes" }, p.codes.length ? p.codes.map(codeChip) : h("span", { class: "muted" }, "none")),
        h("td", { class: "billing-progress" }, h("ul", {}, (p.progress || []).map((g) => h("li", { dataset: { code: g.code } }, progressText(g))))))))));
  };

  download.addEventListener("click", async () => {
    if (!report) return;
    const api = session.api;
    try {
      const response = await fetch(api.url("/v1/billing", { month: report.month, clinic: report.clinic }), {
        headers: api.headers({ Accept: "text/csv" }), credentials: api.credentials, cache: "no-store",
      });
      if (!response.ok) throw new Error(`the service answered ${response.status}`);
      const blob = await response.blob();
      const link = h("a", { href: URL.createObjectURL(blob), download: `rpm-billing-${report.clinic}-${report.month}.csv`, hidden: true }, "CSV");
      document.body.append(link);
      link.click();
      setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
    } catch (err) {
      toast(`Could not download the CSV: ${err.message}`, "error");
    }
  });

  const load = async () => {
    if (isAdmin) {
      const clinics = await session.api.get("/v1/clinics").catch(() => []);
      if (!wanted.clinic) wanted.clinic = clinics[0]?.id || "default";
      replace(clinicSelect, clinics.map((c) => h("option", { value: c.id, selected: c.id === wanted.clinic }, `${c.name} (${c.timezone || "UTC"})`)));
    } else {
      replace(clinicSelect, h("option", { value: wanted.clinic, selected: true }, wanted.clinic));
    }
    try {
      report = await session.api.get("/v1/billing", { month: wanted.month, clinic: wanted.clinic });
    } catch (err) {
      status.textContent = `Could not load the billing report: ${err.message}`;
      return;
    }
    monthInput.value = report.month;
    drawTotals();
    drawTable();
  };
  load();
  return () => {};
}
