// FHIR export status: how many readings wait, were sent or failed, and why the failures failed.

import { h, replace, toast } from "../dom.js";
import { ago, dateTime } from "../format.js";

const STATES = [
  ["pending", "Pending", "Waiting to be sent to the EHR"],
  ["sent", "Sent", "Delivered to the EHR"],
  ["failed", "Failed", "Refused by the EHR; needs attention"],
];

function countsOf(payload) {
  const counts = payload?.counts ?? payload ?? {};
  return Object.fromEntries(STATES.map(([key]) => [key, Number(counts[key] ?? 0)]));
}

function failuresOf(payload) {
  const list = payload?.failures ?? payload?.failed ?? [];
  return Array.isArray(list) ? list : [];
}

export function exportsView(container, session) {
  const cards = h("ul", { class: "stat-cards", "aria-label": "Export counts" });
  const failures = h("div", { class: "failures" });
  const status = h("p", { class: "summary", role: "status" });
  container.append(
    h("div", { class: "view-head" }, h("h1", {}, "FHIR export"), status),
    h("p", { class: "lede" }, "Readings are published to the clinic's EHR as FHIR R4 Observations, each exactly once."),
    cards,
    h("section", { "aria-labelledby": "failures-title" }, h("h2", { id: "failures-title" }, "Failed exports"), failures),
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

  const load = async () => {
    let payload;
    try {
      payload = await session.api.get("/v1/exports");
    } catch (err) {
      status.textContent = err.status === 404 ? "Export status is not available on this service."
        : err.status === 403 ? "Only administrators can see the export status." : `Could not load export status: ${err.message}`;
      return;
    }
    status.textContent = payload.enabled === false ? "No EHR is configured: exports wait until one is." : "";
    const counts = countsOf(payload);
    replace(cards, STATES.map(([key, label, help]) => h("li", { class: ["stat", `stat-${key}`], dataset: { state: key } },
      h("span", { class: "stat-value" }, counts[key].toLocaleString()),
      h("span", { class: "stat-label" }, label),
      h("span", { class: "stat-help" }, help))));
    const rows = failuresOf(payload);
    replace(failures, rows.length ? h("div", { class: "table-wrap" }, h("table", { class: "failures-table" },
      h("caption", { class: "visually-hidden" }, "Failed exports with their reasons"),
      h("thead", {}, h("tr", {}, ["Export", "Reason", "Attempts", "Last attempt", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((item) => h("tr", {},
        h("th", { scope: "row" }, h("code", {}, String(item.id)), item.metric ? ` ${item.metric}` : ""),
        h("td", { class: "reason-text" }, item.reason ?? item.last_error ?? item.error ?? "unknown"),
        h("td", {}, String(item.attempts ?? "\u2014")),
        h("td", {}, item.updated_at || item.last_attempt_at
          ? h("time", { datetime: item.updated_at || item.last_attempt_at, title: dateTime(item.updated_at || item.last_attempt_at) }, ago(item.updated_at || item.last_attempt_at))
          : "\u2014"),
        h("td", {}, h("button", { type: "button", class: "button", onclick: () => retry(item), "aria-label": `Retry export ${item.id}` }, "Retry")))))))
      : h("p", { class: "muted" }, "No failed exports."));
  };
  load();
  const ticker = setInterval(load, 15000);
  return () => clearInterval(ticker);
}
