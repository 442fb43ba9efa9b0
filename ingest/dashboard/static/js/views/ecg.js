// The patient's ECG strips: a list (newest first) and a viewer on standard ECG paper (25 mm/s,
// 10 mm/mV, one row per lead) with zoom and horizontal scroll, and the device's interpretation.
// Keyboard: the paper scrolls with the arrow keys (one second), Page Up/Down (five) and
// Home/End; "+" and "-" zoom.

import { DEFAULT_ZOOM, PAPER_SPEED_MM_S, ZOOMS, ecgPaper, xOf } from "../ecg.js";
import { h, replace } from "../dom.js";
import { dateTime } from "../format.js";

function words(text) {
  return String(text).replace(/_/g, " ");
}

function seconds(value) {
  return `${Number(value).toLocaleString(undefined, { maximumFractionDigits: 1 })} s`;
}

function describe(strip, summary) {
  const leads = Object.keys(strip.leads);
  const parts = [`ECG strip of ${dateTime(strip.measured_at)}`, `${leads.length} lead${leads.length === 1 ? "" : "s"} (${leads.join(", ")})`,
    seconds(summary.duration_s), `${strip.sample_rate_hz} Hz`, "25 mm/s, 10 mm/mV"];
  if (strip.interpretation) parts.push(`device interpretation: ${words(strip.interpretation)}`);
  return parts.join(", ");
}

function viewer(strip, summary) {
  let zoom = DEFAULT_ZOOM;
  const scroller = h("div", { class: "ecg-scroll", tabindex: "0", role: "region",
    "aria-label": `ECG paper, scroll with the arrow keys; ${leadsText(strip)}` });
  const zoomText = h("span", { class: "ecg-zoom-level", "aria-live": "polite" });
  const zoomOut = h("button", { type: "button", class: "button", "aria-label": "Zoom out" }, "\u2212");
  const zoomIn = h("button", { type: "button", class: "button", "aria-label": "Zoom in" }, "+");

  const draw = (keepTime) => {
    const time = keepTime ?? 0;
    replace(scroller, ecgPaper(strip, zoom, describe(strip, summary)));
    scroller.dataset.pxPerMm = String(zoom);
    scroller.scrollLeft = Math.max(0, xOf(time, zoom) - xOf(0, zoom));
    zoomText.textContent = `Zoom ${Math.round((zoom / DEFAULT_ZOOM) * 100)}%`;
    zoomOut.disabled = zoom === ZOOMS[0];
    zoomIn.disabled = zoom === ZOOMS[ZOOMS.length - 1];
  };
  const timeAtLeft = () => scroller.scrollLeft / (PAPER_SPEED_MM_S * zoom);
  const setZoom = (step) => {
    const index = ZOOMS.indexOf(zoom) + step;
    if (index < 0 || index >= ZOOMS.length) return;
    const time = timeAtLeft();
    zoom = ZOOMS[index];
    draw(time);
  };
  zoomOut.addEventListener("click", () => setZoom(-1));
  zoomIn.addEventListener("click", () => setZoom(1));
  scroller.addEventListener("keydown", (event) => {
    const second = PAPER_SPEED_MM_S * zoom;
    const moves = { ArrowRight: second, ArrowLeft: -second, PageDown: 5 * second, PageUp: -5 * second };
    if (event.key in moves) scroller.scrollLeft += moves[event.key];
    else if (event.key === "Home") scroller.scrollLeft = 0;
    else if (event.key === "End") scroller.scrollLeft = scroller.scrollWidth;
    else if (event.key === "+" || event.key === "=") setZoom(1);
    else if (event.key === "-") setZoom(-1);
    else return;
    event.preventDefault();
  });

  const meta = h("p", { class: "ecg-meta" },
    `${dateTime(strip.measured_at)} \u00b7 ${seconds(summary.duration_s)} \u00b7 ${strip.sample_rate_hz} Hz \u00b7 device `,
    h("code", {}, strip.device_id), " \u00b7 25 mm/s, 10 mm/mV");
  const interpretation = strip.interpretation
    ? h("p", { class: "ecg-interpretation" }, h("strong", {}, "Device interpretation: "), words(strip.interpretation))
    : h("p", { class: "ecg-interpretation muted" }, "The device gave no interpretation.");
  const figure = h("figure", { class: "ecg-viewer", dataset: { strip: strip.id } },
    h("div", { class: "ecg-toolbar" }, interpretation,
      h("div", { class: "ecg-zoom", role: "group", "aria-label": "Zoom" }, zoomOut, zoomText, zoomIn)),
    scroller,
    h("figcaption", {}, meta));
  draw(0);
  return figure;
}

function leadsText(strip) {
  const leads = Object.keys(strip.leads);
  return `${leads.length} lead${leads.length === 1 ? "" : "s"}`;
}

/** The ECG section of a patient's page: empty until the strips are known. */
export function ecgSection(session, patientId) {
  const list = h("ol", { class: "ecg-list", "aria-label": "ECG strips" });
  const shown = h("div", { class: "ecg-shown" });
  const section = h("section", { class: "ecg-section", "aria-labelledby": "ecg-title", hidden: true },
    h("h2", { id: "ecg-title" }, "ECG strips"), list, shown);
  let summaries = [];
  let controller = null;

  const open = async (summary) => {
    controller?.abort();
    controller = new AbortController();
    for (const button of list.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", button.dataset.strip === summary.id ? "true" : "false");
    }
    replace(shown, h("p", { class: "muted", role: "status" }, "Loading strip\u2026"));
    try {
      const strip = await session.api.get(`/v1/ecg/${encodeURIComponent(summary.id)}`, {}, controller.signal);
      replace(shown, viewer(strip, summary));
    } catch (err) {
      if (err.name !== "AbortError") replace(shown, h("p", { class: "form-error" }, `Could not load the strip: ${err.message}`));
    }
  };

  const load = async () => {
    try {
      const page = await session.api.get(`/v1/patients/${encodeURIComponent(patientId)}/ecg`, { limit: 50 });
      summaries = page.strips || [];
    } catch {
      summaries = [];
    }
    if (!summaries.length) return;
    section.hidden = false;
    replace(list, summaries.map((summary) => h("li", {},
      h("button", { type: "button", class: "ecg-pick", dataset: { strip: summary.id }, "aria-pressed": "false",
        onclick: () => open(summary) },
      h("span", { class: "ecg-pick-time" }, dateTime(summary.measured_at)),
      h("span", { class: "ecg-pick-detail" }, `${seconds(summary.duration_s)} \u00b7 ${summary.leads.join(", ")}`),
      summary.interpretation ? h("span", { class: "ecg-pick-interpretation" }, words(summary.interpretation)) : null))));
    await open(summaries[0]);
  };
  load();
  return section;
}
