// The REST API client: every call carries the signed-in token; the live alert stream is read
// with fetch (EventSource cannot send an Authorization header, and a token never goes in a URL).
// Without a token the calls ride on the browser session a SMART launch from the EHR opened (an
// httpOnly cookie); state-changing calls then echo the session's CSRF token in X-CSRF-Token.

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `request failed (${status})`);
    this.status = status;
    this.detail = detail;
  }
}

function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  return "";
}

import { setMetricDisplays } from "./format.js";

// The kinds of alert rules (labels, title templates) as the service describes them: fetched once
// per page by the first Api.ruleKinds() call; read synchronously by ruleKind() once loaded.
const ruleKindCache = { kinds: new Map(), loading: null };

/** One kind of alert rule by name ({name, label, title, ...}), or undefined before it loaded. */
export function ruleKind(name) {
  return ruleKindCache.kinds.get(name);
}

const metricCache = { loading: null };

/** The CSRF token of the browser session (the readable rpm_csrf cookie), or "". */
export function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === "rpm_csrf") return decodeURIComponent(value.join("="));
  }
  return "";
}

export class Api {
  constructor(token, { onUnauthorized } = {}) {
    this.token = token;
    this.onUnauthorized = onUnauthorized || (() => {});
  }

  /** Load the alert rule kinds once (GET /v1/alert-rule-kinds); resolves to the map by name. */
  ruleKinds() {
    if (!ruleKindCache.loading) {
      ruleKindCache.loading = this.get("/v1/alert-rule-kinds")
        .then((page) => {
          ruleKindCache.kinds = new Map(page.kinds.map((k) => [k.name, k]));
          return ruleKindCache.kinds;
        })
        .catch((err) => {
          ruleKindCache.loading = null; // try again next time
          throw err;
        });
    }
    return ruleKindCache.loading;
  }

  /**
   * Load the display table once (GET /v1/dashboard/metrics: labels, display units, digits, order)
   * into format.js, which every view formats values with.
   */
  metricDisplays() {
    if (!metricCache.loading) {
      metricCache.loading = this.get("/v1/dashboard/metrics")
        .then((page) => { setMetricDisplays(page); return page; })
        .catch((err) => {
          metricCache.loading = null; // try again next time
          throw err;
        });
    }
    return metricCache.loading;
  }

  /** True when the calls ride on the browser session cookie rather than a token. */
  get cookieSession() { return !this.token; }

  get credentials() { return this.token ? "omit" : "same-origin"; }

  headers(extra = {}, method = "GET") {
    const auth = this.token ? { Authorization: `Bearer ${this.token}` } : {};
    const csrf = !this.token && !["GET", "HEAD"].includes(method) ? { "X-CSRF-Token": csrfToken() } : {};
    return { ...auth, ...csrf, Accept: "application/json", ...extra };
  }

  url(path, params) {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      if (value === undefined || value === null || value === "") continue;
      for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, v);
    }
    return url.toString();
  }

  async request(method, path, { params, body, signal } = {}) {
    let response;
    try {
      response = await fetch(this.url(path, params), {
        method,
        headers: this.headers(body === undefined ? {} : { "Content-Type": "application/json" }, method),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
        credentials: this.credentials,
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "the service cannot be reached");
    }
    let payload = null;
    const text = await response.text();
    if (text) {
      try { payload = JSON.parse(text); } catch { payload = text; }
    }
    if (!response.ok) {
      if (response.status === 401) this.onUnauthorized();
      const detail = describe(payload?.detail) || `request failed (${response.status})`;
      throw new ApiError(response.status, detail);
    }
    return payload;
  }

  get(path, params, signal) { return this.request("GET", path, { params, signal }); }

  post(path, body) { return this.request("POST", path, { body }); }

  /**
   * Follow a Server-Sent Events stream until ``signal`` aborts, reconnecting with backoff and
   * resuming with Last-Event-ID. ``onEvent({event, data, id})`` gets each event, ``onState``
   * "live" / "connecting" / "offline", ``onReconnect()`` is called after a reconnection so the
   * caller can reload what it may have missed.
   */
  async follow(path, { onEvent, onState = () => {}, onReconnect = () => {}, signal }) {
    let lastId = null;
    let delay = 1000;
    let connectedBefore = false;
    while (!signal.aborted) {
      onState("connecting");
      try {
        const headers = this.headers({ Accept: "text/event-stream" });
        if (lastId) headers["Last-Event-ID"] = lastId;
        const response = await fetch(this.url(path), { headers, signal, cache: "no-store", credentials: this.credentials });
        if (response.status === 401) { this.onUnauthorized(); return; }
        if (!response.ok || !response.body) throw new ApiError(response.status, "stream refused");
        onState("live");
        if (connectedBefore) onReconnect();
        connectedBefore = true;
        delay = 1000;
        for await (const event of readEvents(response.body, signal)) {
          if (event.id) lastId = event.id;
          if (event.retry) delay = event.retry;
          if (event.data !== null) onEvent(event);
        }
      } catch (err) {
        if (signal.aborted) return;
      }
      onState("offline");
      await sleep(delay + Math.random() * 500, signal);
      delay = Math.min(delay * 2, 30000);
    }
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/** Parse a text/event-stream body into {event, data, id, retry} objects (the WHATWG rules). */
export async function* readEvents(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal?.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
  let buffer = "";
  let event = { event: "message", data: null, id: null, retry: null };
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      if (buffer.length > 1048576) throw new Error("event stream line too long");
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (event.data !== null || event.id) yield event;
          event = { event: "message", data: null, id: null, retry: null };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "data") event.data = event.data === null ? val : `${event.data}\n${val}`;
        else if (field === "event") event.event = val;
        else if (field === "id") event.id = val;
        else if (field === "retry" && /^\d+$/.test(val)) event.retry = Number(val);
      }
    }
  } finally {
    try { reader.releaseLock(); } catch { /* already released */ }
  }
}
