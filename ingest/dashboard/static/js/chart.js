// Hand-written SVG time-series chart: bucket min-max band and average line per series, the
// patient's thresholds as shaded bands, alert markers, keyboard-readable values. A min-max band
// is drawn only over buckets that hold a spread (min < max); a bucket of one reading is a point.

import { h, s } from "./dom.js";
import { dateTime, displayUnit, formatNumber } from "./format.js";

const W = 720;
const H = 220;
const M = { top: 18, right: 16, bottom: 28, left: 48 };

function niceStep(span, target) {
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

function domainOf(series, limits, lines) {
  const values = [];
  for (const line of series) for (const p of line.points) values.push(p.min, p.max);
  if (limits.low !== undefined && limits.low !== null) values.push(limits.low);
  if (limits.high !== undefined && limits.high !== null) values.push(limits.high);
  for (const l of lines) if (l.inDomain) values.push(l.value);
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (lo === hi) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.08;
  return [lo - pad, hi + pad];
}

function timeTicks(since, until) {
  const span = until - since;
  const hour = 3600e3;
  const day = 24 * hour;
  const step = span <= 2 * day ? 6 * hour : span <= 10 * day ? day : 7 * day;
  // Ticks on local midnights (and 06:00, 12:00, 18:00 for short ranges), stepping by calendar
  // so a daylight-saving change does not shift them.
  const ticks = [];
  const cursor = new Date(since);
  cursor.setHours(0, 0, 0, 0);
  while (cursor.getTime() <= until) {
    if (step < day) {
      for (const hour of [0, 6, 12, 18]) {
        const t = new Date(cursor.getFullYear(), cursor.getMonth(), cursor.getDate(), hour).getTime();
        if (t >= since && t <= until) ticks.push(t);
      }
    } else if (step === day || cursor.getDay() === 1) {
      if (cursor.getTime() >= since) ticks.push(cursor.getTime());
    }
    cursor.setDate(cursor.getDate() + 1);
  }
  const fmt = step < day
    ? { hour: "2-digit", minute: "2-digit" }
    : step === day ? { weekday: "short", day: "numeric" } : { month: "short", day: "numeric" };
  const midnight = { month: "short", day: "numeric" };
  return ticks.map((t) => {
    const d = new Date(t);
    const atMidnight = step < day && d.getHours() === 0;
    return { t, label: d.toLocaleString(undefined, atMidnight ? midnight : fmt) };
  });
}

/**
 * series: [{label, cls, points: [{t: ms, min, max, avg, count}]}]
 * limits: {low, high, critical_low, critical_high} (any may be missing)
 * lines: [{value, cls, label, inDomain}] extra threshold lines (charts of several series)
 * markers: [{t: ms, severity, label}]
 */
export function lineChart({ title, metric, unit, since, until, series, limits = {}, lines = [], markers = [], gapMs }) {
  const x0 = M.left;
  const x1 = W - M.right;
  const y0 = H - M.bottom;
  const y1 = M.top;
  const [lo, hi] = domainOf(series, limits, lines);
  const x = (t) => x0 + ((t - since) / (until - since)) * (x1 - x0);
  const y = (v) => y0 - ((v - lo) / (hi - lo)) * (y0 - y1);
  const clampY = (v) => Math.max(y1, Math.min(y0, y(v)));
  const has = (v) => v !== undefined && v !== null && Number.isFinite(Number(v));

  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    tabindex: "0",
    "aria-label": summary(title, metric, unit, series, markers),
  });
  svg.append(s("title", {}, title));

  // Threshold bands: normal range, warning zones, critical zones.
  const bands = s("g", { class: "bands" });
  const band = (from, to, cls, label) => {
    const top = clampY(Math.max(from, to));
    const bottom = clampY(Math.min(from, to));
    if (bottom - top < 0.5) return;
    bands.append(s("rect", { class: cls, x: x0, y: top, width: x1 - x0, height: bottom - top },
      s("title", {}, label)));
  };
  if (has(limits.critical_high)) band(limits.critical_high, hi, "band-critical", `critical above ${limits.critical_high}`);
  if (has(limits.critical_low)) band(lo, limits.critical_low, "band-critical", `critical below ${limits.critical_low}`);
  if (has(limits.high)) band(limits.high, has(limits.critical_high) ? Math.min(limits.critical_high, hi) : hi, "band-warning", `above ${limits.high}`);
  if (has(limits.low)) band(has(limits.critical_low) ? Math.max(limits.critical_low, lo) : lo, limits.low, "band-warning", `below ${limits.low}`);
  if (has(limits.low) && has(limits.high)) band(limits.low, limits.high, "band-normal", `target ${limits.low}\u2013${limits.high}`);
  svg.append(bands);
  for (const [key, cls] of [["low", "limit-warning"], ["high", "limit-warning"], ["critical_low", "limit-critical"], ["critical_high", "limit-critical"]]) {
    if (has(limits[key]) && limits[key] > lo && limits[key] < hi) {
      svg.append(s("line", { class: cls, x1: x0, x2: x1, y1: y(limits[key]), y2: y(limits[key]) }));
    }
  }
  for (const l of lines) {
    if (has(l.value) && l.value > lo && l.value < hi) {
      svg.append(s("line", { class: l.cls, x1: x0, x2: x1, y1: y(l.value), y2: y(l.value) }, s("title", {}, l.label)));
    }
  }

  // Axes and grid.
  const axis = s("g", { class: "axis", "aria-hidden": "true" });
  const step = niceStep(hi - lo, 4);
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) {
    axis.append(s("line", { class: "grid", x1: x0, x2: x1, y1: y(v), y2: y(v) }));
    axis.append(s("text", { x: x0 - 6, y: y(v) + 4, "text-anchor": "end" }, formatNumber(metric, v)));
  }
  for (const tick of timeTicks(since, until)) {
    axis.append(s("line", { class: "tick", x1: x(tick.t), x2: x(tick.t), y1: y0, y2: y0 + 4 }));
    const tx = x(tick.t);
    const anchor = tx > x1 - 24 ? "end" : tx < x0 + 24 ? "start" : "middle";
    axis.append(s("text", { x: tx, y: H - 8, "text-anchor": anchor }, tick.label));
  }
  axis.append(s("line", { class: "baseline", x1: x0, x2: x1, y1: y0, y2: y0 }));
  svg.append(axis);

  // Series: min-max band and the average line, broken at gaps in the data. The band spans only
  // consecutive buckets with a spread (a lone one is a whisker), never tapering to a bucket of one
  // reading, which would draw a wedge of readings that do not exist.
  for (const line of series) {
    const group = s("g", { class: ["series", line.cls] });
    for (const run of runs(line.points, gapMs)) {
      for (const span of spreads(run)) {
        if (span.length > 1) {
          const upper = span.map((p) => `${x(p.t).toFixed(1)},${y(p.max).toFixed(1)}`);
          const lower = span.map((p) => `${x(p.t).toFixed(1)},${y(p.min).toFixed(1)}`).reverse();
          group.append(s("polygon", { class: "range", points: [...upper, ...lower].join(" ") }));
        } else {
          const [p] = span;
          group.append(s("line", { class: "range range-whisker", x1: x(p.t), x2: x(p.t), y1: y(p.max), y2: y(p.min) }));
        }
      }
      if (run.length > 1) {
        group.append(s("polyline", { class: "avg", points: run.map((p) => `${x(p.t).toFixed(1)},${y(p.avg).toFixed(1)}`).join(" ") }));
      }
      if (run.length <= 2 || line.points.length <= 60) {
        for (const p of run) group.append(s("circle", { class: "dot", cx: x(p.t), cy: y(p.avg), r: 2.5 }));
      }
    }
    svg.append(group);
  }

  // Alert markers along the top edge.
  const marks = s("g", { class: "markers" });
  for (const m of markers) {
    if (m.t < since || m.t > until) continue;
    const mx = x(m.t);
    marks.append(s("path", { class: ["marker", `marker-${m.severity}`], d: `M${mx - 6},${y1 - 12} L${mx + 6},${y1 - 12} L${mx},${y1 - 2} Z` },
      s("title", {}, m.label)));
    marks.append(s("line", { class: ["marker-line", `marker-${m.severity}`], x1: mx, x2: mx, y1: y1, y2: y0 }));
  }
  svg.append(marks);

  // Cursor for keyboard and pointer reading.
  const primary = series[0]?.points || [];
  const cursor = s("line", { class: "cursor", x1: 0, x2: 0, y1: y1, y2: y0, visibility: "hidden" });
  svg.append(cursor);
  const readout = h("p", { class: "chart-readout", "aria-live": "polite" },
    primary.length ? "Use the arrow keys or point at the chart to read values." : "");
  let index = -1;
  const show = (i) => {
    if (!primary.length) return;
    index = Math.max(0, Math.min(primary.length - 1, i));
    const p = primary[index];
    cursor.setAttribute("x1", x(p.t));
    cursor.setAttribute("x2", x(p.t));
    cursor.setAttribute("visibility", "visible");
    const parts = series.map((line) => {
      const q = line.points.find((pt) => pt.t === p.t);
      return q ? `${line.label} ${formatNumber(metric, q.avg)} (${formatNumber(metric, q.min)}\u2013${formatNumber(metric, q.max)})` : null;
    }).filter(Boolean);
    readout.textContent = `${dateTime(p.t)}: ${parts.join(", ")} ${displayUnit(metric, unit)}, ${p.count} reading${p.count === 1 ? "" : "s"}`;
  };
  svg.addEventListener("keydown", (ev) => {
    const moves = { ArrowRight: 1, ArrowLeft: -1, Home: -Infinity, End: Infinity };
    if (!(ev.key in moves)) return;
    ev.preventDefault();
    const move = moves[ev.key];
    show(Number.isFinite(move) ? (index < 0 ? primary.length - 1 : index + move) : move < 0 ? 0 : primary.length - 1);
  });
  svg.addEventListener("pointermove", (ev) => {
    const box = svg.getBoundingClientRect();
    const t = since + ((ev.clientX - box.left) / box.width * W - x0) / (x1 - x0) * (until - since);
    let best = 0;
    primary.forEach((p, i) => { if (Math.abs(p.t - t) < Math.abs(primary[best].t - t)) best = i; });
    show(best);
  });
  return h("figure", { class: "chart-figure" }, svg, readout);
}

function runs(points, gapMs) {
  const out = [];
  let run = [];
  for (const p of points) {
    if (run.length && gapMs && p.t - run[run.length - 1].t > gapMs) { out.push(run); run = []; }
    run.push(p);
  }
  if (run.length) out.push(run);
  return out;
}

/** The runs of consecutive buckets whose readings spread (min < max): where a band belongs. */
function spreads(run) {
  const out = [];
  let span = [];
  for (const p of run) {
    if (p.max > p.min) { span.push(p); continue; }
    if (span.length) out.push(span);
    span = [];
  }
  if (span.length) out.push(span);
  return out;
}

function summary(title, metric, unit, series, markers) {
  const parts = series.map((line) => {
    if (!line.points.length) return `${line.label}: no data`;
    const min = Math.min(...line.points.map((p) => p.min));
    const max = Math.max(...line.points.map((p) => p.max));
    const last = line.points[line.points.length - 1];
    return `${line.label} from ${formatNumber(metric, min)} to ${formatNumber(metric, max)} ${displayUnit(metric, unit)}, latest average ${formatNumber(metric, last.avg)}`;
  });
  const alerts = markers.length ? `; ${markers.length} alert${markers.length === 1 ? "" : "s"} marked` : "";
  return `${title}: ${parts.join("; ")}${alerts}`;
}
