// The dashboard shell: sign-in, session, navigation between views, the live alert connection.
// Two ways in: an API token typed into the sign-in form (kept in sessionStorage), or the browser
// session a SMART launch from the EHR opened (an httpOnly cookie the page never sees; token null).

import { Api, ApiError, csrfToken } from "./api.js";
import { AlertStore } from "./alerts-store.js";
import { DeadLetterWatch } from "./dead-letter-watch.js";
import { announce, h, replace } from "./dom.js";
import { billingView } from "./billing/page.js";
import { timeZone } from "./format.js";
import { alertsView } from "./views/alerts.js";
import { exportsView } from "./views/exports.js";
import { patientView } from "./views/patient.js";
import { patientsView } from "./views/patients.js";
import { signInView } from "./views/signin.js";

const TOKEN_KEY = "rpm.dashboard.token";
const main = document.getElementById("main");
const topbar = document.getElementById("topbar");

let session = null;
let cleanup = () => {};

class Session {
  constructor(token, me) {
    this.me = me;
    const refused = token
      ? "Your token was refused: sign in again."
      : "Your session from the EHR has ended: open the app from the patient's chart again, or sign in with a token.";
    this.api = new Api(token, { onUnauthorized: () => signOut(refused, { ended: true }) });
    this.store = new AlertStore(this.api);
    // Admins only: a banner when devices flood the dead-letter table (clinicians never ask).
    this.deadLetters = new DeadLetterWatch(this.api, me, document.getElementById("admin-warnings"));
    this.patients = new Map();
    this.tz = timeZone();
  }

  async loadPatients() {
    const page = await this.api.get("/v1/dashboard/patients", { tz: this.tz, limit: 500 });
    this.patients = new Map(page.patients.map((p) => [p.id, p]));
    return page.patients;
  }

  patientName(id) {
    return this.patients.get(id)?.display_name ?? "Unknown patient";
  }
}

async function signIn(token) {
  const api = new Api(token);
  let me;
  try {
    me = await api.get("/v1/dashboard/me");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) throw new Error("This token was refused: it is unknown, expired or revoked.");
    if (err instanceof ApiError && err.status === 403) throw new Error("This token cannot open the dashboard: use a clinician or admin token.");
    throw new Error(err.message || "Sign-in failed.");
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  start(token, me);
}

/** Resume the browser session a SMART launch opened, if there is one; false otherwise. */
async function resumeCookieSession() {
  if (!csrfToken()) return false; // its readable twin is absent: no session to ask about
  try {
    start(null, await new Api(null).get("/v1/dashboard/me"));
    return true;
  } catch {
    return false;
  }
}

function start(token, me) {
  session = new Session(token, me);
  topbar.hidden = false;
  document.getElementById("who").textContent = `${me.name} \u00b7 ${me.role}${me.clinic ? ` \u00b7 ${me.clinic}` : ""}`;
  session.store.subscribe(updateChrome);
  session.store.start();
  session.deadLetters.start();
  // Patients' names, the alert rule kinds' labels and the metrics' display table, then the first view.
  Promise.allSettled([session.loadPatients(), session.api.ruleKinds(), session.api.metricDisplays()]).finally(() => render());
  if (!location.hash || location.hash === "#/" || location.hash === "#/signin") location.hash = "#/alerts";
}

function signOut(message, { ended = false } = {}) {
  if (session) {
    session.store.stop();
    session.deadLetters.stop();
    // A browser session is ended at the service too (the cookie is httpOnly: only it can).
    if (session.api.cookieSession && !ended) session.api.post("/smart/logout").catch(() => {});
  }
  session = null;
  sessionStorage.removeItem(TOKEN_KEY);
  cleanup();
  cleanup = () => {};
  topbar.hidden = true;
  document.title = "RPM clinician dashboard";
  replace(main, signInView({ onSubmit: signIn, message }));
  main.querySelector("input")?.focus();
}

function updateChrome(change) {
  if (!session) return;
  if (change.alert && !session.patients.has(change.alert.patient_id)) {
    // A patient enrolled after sign-in: learn their name, then let the views redraw.
    const current = session;
    current.loadPatients().then(() => current.store.emit({ type: "patients" })).catch(() => {});
  }
  const counts = session.store.counts();
  const badge = document.getElementById("alert-badge");
  badge.hidden = counts.total === 0;
  badge.textContent = String(counts.total);
  badge.classList.toggle("badge-critical", counts.critical > 0);
  badge.setAttribute("aria-label", `${counts.total} active, ${counts.critical} critical`);
  document.title = counts.unacknowledged ? `(${counts.unacknowledged}) RPM clinician dashboard` : "RPM clinician dashboard";
  const live = document.getElementById("live-state");
  live.dataset.state = session.store.state;
  live.textContent = { live: "Live", connecting: "Connecting\u2026", offline: "Reconnecting\u2026" }[session.store.state] || "";
  if (change.type === "new" && change.live && change.alert.severity === "critical") {
    announce(`New critical alert for ${session.patientName(change.alert.patient_id)}`);
  }
}

function route() {
  const [path, query] = (location.hash.replace(/^#\/?/, "") || "alerts").split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query || "") };
}

function render() {
  if (!session) return;
  cleanup();
  cleanup = () => {};
  const { parts, query } = route();
  const [name, id] = parts;
  for (const link of document.querySelectorAll("[data-route]")) {
    if (link.dataset.route === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const container = h("div", { class: "view" });
  replace(main, container);
  const views = {
    alerts: () => alertsView(container, session, query),
    patients: () => (id ? patientView(container, session, id, query) : patientsView(container, session, query)),
    exports: () => exportsView(container, session, query),
    billing: () => billingView(container, session, query),
  };
  cleanup = (views[name] || views.alerts)() || (() => {});
  main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", () => render());
document.getElementById("sign-out").addEventListener("click", () => signOut("You are signed out."));

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  signIn(saved).catch((err) => signOut(err.message));
} else {
  resumeCookieSession().then((resumed) => { if (!resumed) signOut(); });
}
