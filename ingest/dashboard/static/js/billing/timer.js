// The patient page's billing panel: a review timer (start, pause, stop with a note and the
// "interactive communication" box), the month's minutes and days so far, how many more are needed
// for the next code, and the month's time entries (their authors or admins may delete them).
//
// The timer lives in sessionStorage (per tab, per patient: when it started, time banked, the
// interactive box; never the note), so it survives a reload and going to other pages, and nothing
// of it outlives the tab on a shared workstation (the dashboard keeps nothing in local storage).
// A timer left running is pointed out: on coming back to the page, and once it has run
// WARN_AFTER_MS.

import { h, replace, toast } from "../dom.js";
import { dateTime } from "../format.js";
import { codeChip, periodText, progressText } from "./format.js";

export const TIMER_KEY = "rpm.billing.timer.v1.";
export const WARN_AFTER_MS = 30 * 60e3;
const MAX_MINUTES = 240;

function loadTimer(id) {
  try {
    const raw = JSON.parse(sessionStorage.getItem(TIMER_KEY + id) || "null");
    if (raw && Number.isFinite(raw.bankedMs) && (raw.startedAt === null || Number.isFinite(raw.startedAt))) return raw;
  } catch { /* a damaged entry is dropped below */ }
  sessionStorage.removeItem(TIMER_KEY + id);
  return null;
}

function saveTimer(id, timer) {
  if (timer) sessionStorage.setItem(TIMER_KEY + id, JSON.stringify(timer));
  else sessionStorage.removeItem(TIMER_KEY + id);
}

export function elapsedMs(timer, now = Date.now()) {
  if (!timer) return 0;
  return timer.bankedMs + (timer.startedAt === null ? 0 : Math.max(0, now - timer.startedAt));
}

export function clock(ms) {
  const total = Math.floor(ms / 1000);
  const hh = Math.floor(total / 3600);
  const mm = String(Math.floor((total % 3600) / 60)).padStart(2, "0");
  const ss = String(total % 60).padStart(2, "0");
  return hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** Minutes to log for a timer's time: rounded, at least 1, at most 240. */
export function minutesFor(ms) {
  return Math.min(MAX_MINUTES, Math.max(1, Math.round(ms / 60e3)));
}

export function billingPanel(session, patient) {
  const id = patient.id;
  const path = `/v1/patients/${encodeURIComponent(id)}`;
  let timer = loadTimer(id);
  let leftRunning = Boolean(timer && timer.startedAt !== null); // found running when the page opened

  const display = h("output", { class: "timer-clock", id: "timer-clock", "aria-live": "off" }, "00:00");
  const status = h("p", { class: "timer-status", id: "timer-status", role: "status" });
  const warning = h("p", { class: "timer-warning", id: "timer-warning", role: "alert", hidden: true });
  const interactive = h("input", { type: "checkbox", id: "timer-interactive" });
  const startButton = h("button", { type: "button", class: "button-primary", id: "timer-start" }, "Start");
  const pauseButton = h("button", { type: "button", class: "button", id: "timer-pause" }, "Pause");
  const stopButton = h("button", { type: "button", class: "button", id: "timer-stop" }, "Stop and log");
  const addButton = h("button", { type: "button", class: "button-quiet", id: "time-add" }, "Log time without the timer");

  const minutesInput = h("input", { type: "number", id: "time-minutes", min: "1", max: String(MAX_MINUTES), step: "1", required: true, inputmode: "numeric" });
  const noteInput = h("textarea", { id: "time-note", rows: "2", maxlength: "2000" });
  const formInteractive = h("input", { type: "checkbox", id: "time-interactive" });
  const formError = h("p", { class: "form-error", role: "alert" });
  const form = h("form", { class: "time-form", id: "time-form", hidden: true, novalidate: true, "aria-labelledby": "time-form-title" },
    h("h3", { id: "time-form-title" }, "Log review time"),
    h("div", { class: "field" }, h("label", { for: "time-minutes" }, "Minutes"), minutesInput),
    h("div", { class: "field field-check" }, formInteractive,
      h("label", { for: "time-interactive" }, "Included an interactive communication with the patient or caregiver")),
    h("div", { class: "field field-wide" }, h("label", { for: "time-note" }, "Note (optional)"), noteInput),
    formError,
    h("div", { class: "dialog-actions" },
      h("button", { type: "submit", class: "button-primary" }, "Log time"),
      h("button", { type: "button", class: "button-quiet", id: "time-cancel" }, "Cancel"),
      h("button", { type: "button", class: "button-quiet", id: "timer-discard" }, "Discard the timer")));

  const summary = h("div", { class: "billing-summary", id: "billing-summary", "aria-busy": "true" });
  const entries = h("div", { class: "time-entries", id: "time-entries" });

  const draw = () => {
    const ms = elapsedMs(timer);
    const running = Boolean(timer && timer.startedAt !== null);
    display.textContent = clock(ms);
    display.dataset.state = running ? "running" : timer ? "paused" : "idle";
    startButton.textContent = timer && !running ? "Resume" : "Start";
    startButton.hidden = running;
    pauseButton.hidden = !running;
    stopButton.disabled = !timer;
    if (timer) interactive.checked = Boolean(timer.interactive);
    const said = running ? "Timer running." : timer ? "Timer paused." : "";
    if (status.textContent !== said) status.textContent = said;
    if (running && ms >= WARN_AFTER_MS) {
      showWarning("long", `The timer has been running for ${Math.floor(ms / 60e3)} minutes. Still reviewing? Pause or stop it when you are done.`);
    } else if (leftRunning && running) {
      showWarning("left", `A timer for this patient was left running (since ${dateTime(new Date(timer.startedAt).toISOString())}). Pause or stop it if you are not reviewing.`);
    } else {
      warning.hidden = true;
      delete warning.dataset.kind;
    }
  };

  const showWarning = (kind, text) => {
    warning.hidden = false;
    warning.dataset.kind = kind;
    if (warning.textContent !== text) warning.textContent = text;
  };

  const update = (next) => {
    timer = next;
    saveTimer(id, timer);
    leftRunning = false;
    draw();
  };

  startButton.addEventListener("click", () => {
    const now = Date.now();
    update({ bankedMs: timer?.bankedMs ?? 0, startedAt: now, interactive: timer ? Boolean(timer.interactive) : interactive.checked });
  });
  pauseButton.addEventListener("click", () => {
    update({ ...timer, bankedMs: elapsedMs(timer), startedAt: null });
  });
  interactive.addEventListener("change", () => {
    if (timer) update({ ...timer, interactive: interactive.checked });
  });

  const openForm = (fromTimer) => {
    form.dataset.source = fromTimer ? "timer" : "manual";
    minutesInput.value = fromTimer ? String(minutesFor(elapsedMs(timer))) : "";
    formInteractive.checked = fromTimer ? Boolean(timer?.interactive) : false;
    noteInput.value = "";
    formError.textContent = "";
    form.querySelector("#timer-discard").hidden = !fromTimer;
    form.hidden = false;
    minutesInput.focus();
  };
  stopButton.addEventListener("click", () => {
    if (timer && timer.startedAt !== null) update({ ...timer, bankedMs: elapsedMs(timer), startedAt: null });
    openForm(true);
  });
  addButton.addEventListener("click", () => openForm(false));
  form.querySelector("#time-cancel").addEventListener("click", () => { form.hidden = true; });
  form.querySelector("#timer-discard").addEventListener("click", () => {
    update(null);
    form.hidden = true;
    toast("Timer discarded.");
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const minutes = Number(minutesInput.value);
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > MAX_MINUTES) {
      minutesInput.setAttribute("aria-invalid", "true");
      formError.textContent = `Minutes must be a whole number from 1 to ${MAX_MINUTES}.`;
      return;
    }
    minutesInput.removeAttribute("aria-invalid");
    const body = { minutes, interactive: formInteractive.checked };
    if (noteInput.value.trim()) body.note = noteInput.value.trim();
    try {
      await session.api.post(`${path}/time`, body);
    } catch (err) {
      formError.textContent = `Could not log the time: ${err.message}`;
      return;
    }
    if (form.dataset.source === "timer") update(null);
    form.hidden = true;
    toast(`Logged ${minutes} minute${minutes === 1 ? "" : "s"}.`, "success");
    refresh();
  });

  const drawEntries = (page) => {
    const rows = page.entries || [];
    replace(entries, rows.length ? h("ul", { class: "entry-list", "aria-label": "Time logged this month" }, rows.map((e) =>
      h("li", { class: "entry", dataset: { entryId: e.id } },
        h("span", { class: "entry-minutes" }, `${e.minutes} min`),
        e.interactive ? h("span", { class: "pill pill-info" }, "interactive") : null,
        h("span", { class: "entry-meta" }, ` ${e.clinician} \u00b7 `, h("time", { datetime: e.performed_at }, dateTime(e.performed_at))),
        e.note ? h("q", { class: "entry-note" }, e.note) : null,
        e.can_delete ? h("button", { type: "button", class: "button-quiet", "aria-label": `Delete ${e.minutes} minutes logged by ${e.clinician}`, onclick: () => remove(e) }, "Delete") : null)))
      : h("p", { class: "muted" }, "No time logged this month."));
  };

  const remove = async (entry) => {
    if (!window.confirm(`Delete ${entry.minutes} minutes logged by ${entry.clinician}? The deletion is kept in the audit log.`)) return;
    try {
      await session.api.request("DELETE", `${path}/time/${encodeURIComponent(entry.id)}`);
      toast("Time entry deleted.", "success");
    } catch (err) {
      toast(`Could not delete: ${err.message}`, "error");
    }
    refresh();
  };

  const drawSummary = (report) => {
    summary.removeAttribute("aria-busy");
    const me = (report.patients || [])[0];
    if (!me) {
      replace(summary, h("p", { class: "muted" }, `Not in a monitoring episode in ${report.month}: time logged still counts once one starts this month.`));
      return;
    }
    const current = me.current_period;
    replace(summary,
      h("dl", { class: "billing-facts" },
        h("dt", {}, `Minutes in ${report.month}`),
        h("dd", { id: "billing-minutes" }, String(me.management_minutes), me.interactive ? " (with an interactive communication)" : " (no interactive communication yet)"),
        current ? h("dt", {}, "Days with readings, current period") : null,
        current ? h("dd", { id: "billing-days" }, periodText(current)) : null,
        h("dt", {}, "Codes this month"),
        h("dd", { id: "billing-codes" }, me.codes.length ? me.codes.map(codeChip) : "none yet")),
      me.progress?.length ? h("ul", { class: "progress-list", id: "billing-progress", "aria-label": "Still needed" },
        me.progress.map((p) => h("li", { dataset: { code: p.code } }, progressText(p)))) : null);
  };

  const refresh = async () => {
    try {
      const [report, page] = await Promise.all([
        session.api.get("/v1/billing", { patient: id, clinic: patient.clinic }),
        session.api.get(`${path}/time`),
      ]);
      drawSummary(report);
      drawEntries(page);
    } catch (err) {
      summary.removeAttribute("aria-busy");
      replace(summary, h("p", { class: "form-error" }, `Could not load billing figures: ${err.message}`));
    }
  };

  const section = h("section", { class: "billing-panel", "aria-labelledby": "billing-panel-title" },
    h("h2", { id: "billing-panel-title" }, "Monitoring time and billing"),
    h("div", { class: "timer", role: "group", "aria-label": "Review timer" },
      display,
      h("div", { class: "timer-buttons" }, startButton, pauseButton, stopButton),
      h("div", { class: "field field-check" }, interactive, h("label", { for: "timer-interactive" }, "Interactive communication")),
      addButton),
    status, warning, form, summary, entries);

  draw();
  refresh();
  const ticker = setInterval(draw, 1000);
  return { element: section, stop: () => clearInterval(ticker) };
}

