// ECG strips on standard ECG paper: 25 mm/s, 10 mm/mV, 1 mm minor and 5 mm major squares, one
// row per lead, each row starting with a 1 mV calibration pulse. Drawn as SVG: the grid is two
// patterns, each lead one polyline. When a lead has more samples than pixels, each pixel column
// keeps its lowest and highest sample, so no QRS spike is lost to decimation.

import { s } from "./dom.js";

export const PAPER_SPEED_MM_S = 25;
export const GAIN_MM_MV = 10;
export const ROW_MM = 30; // ±1.5 mV per lead row
export const LEFT_MM = 12; // lead label and calibration pulse
export const ZOOMS = [1.5, 2, 3, 4, 6, 8]; // pixels per millimetre
export const DEFAULT_ZOOM = 3;

let patternIds = 0;

/** The x (px) of time t (s) at the zoom. */
export function xOf(t, pxPerMm) {
  return (LEFT_MM + t * PAPER_SPEED_MM_S) * pxPerMm;
}

/** Millimetres of paper a strip takes. */
export function paperSize(strip) {
  const leads = Object.keys(strip.leads);
  const samples = leads.length ? strip.leads[leads[0]].length : 0;
  const seconds = samples / strip.sample_rate_hz;
  return { widthMm: LEFT_MM + seconds * PAPER_SPEED_MM_S + 2, heightMm: Math.max(1, leads.length) * ROW_MM, seconds };
}

/** Polyline points of one lead: x from the sample index, y from µV about the row's baseline. */
export function tracePoints(samples, rate, baselineY, pxPerMm) {
  const pxPerSample = (PAPER_SPEED_MM_S * pxPerMm) / rate;
  const y = (uv) => (baselineY - (uv / 1000) * GAIN_MM_MV * pxPerMm).toFixed(1);
  const x0 = LEFT_MM * pxPerMm;
  const out = [];
  if (pxPerSample >= 1) {
    for (let i = 0; i < samples.length; i += 1) out.push(`${(x0 + i * pxPerSample).toFixed(1)},${y(samples[i])}`);
    return out.join(" ");
  }
  const perColumn = 1 / pxPerSample;
  for (let start = 0, col = 0; start < samples.length; col += 1) {
    const end = Math.min(samples.length, Math.round((col + 1) * perColumn));
    let lo = start;
    let hi = start;
    for (let i = start; i < end; i += 1) {
      if (samples[i] < samples[lo]) lo = i;
      if (samples[i] > samples[hi]) hi = i;
    }
    const x = (x0 + col).toFixed(1);
    const [first, second] = lo <= hi ? [lo, hi] : [hi, lo];
    out.push(`${x},${y(samples[first])}`);
    if (second !== first) out.push(`${x},${y(samples[second])}`);
    start = Math.max(end, start + 1);
  }
  return out.join(" ");
}

function gridDefs(pxPerMm) {
  patternIds += 1;
  const minor = `ecg-minor-${patternIds}`;
  const major = `ecg-major-${patternIds}`;
  const m = pxPerMm;
  const M = 5 * pxPerMm;
  return {
    id: major,
    defs: s("defs", {},
      s("pattern", { id: minor, width: m, height: m, patternUnits: "userSpaceOnUse" },
        s("path", { d: `M ${m} 0 L 0 0 0 ${m}`, class: "ecg-grid-minor", fill: "none" })),
      s("pattern", { id: major, width: M, height: M, patternUnits: "userSpaceOnUse" },
        s("rect", { width: M, height: M, fill: `url(#${minor})` }),
        s("path", { d: `M ${M} 0 L 0 0 0 ${M}`, class: "ecg-grid-major", fill: "none" }))),
  };
}

/** The whole strip as an SVG element at ``pxPerMm`` pixels per millimetre of paper. */
export function ecgPaper(strip, pxPerMm, label) {
  const names = Object.keys(strip.leads);
  const { widthMm, heightMm, seconds } = paperSize(strip);
  const width = Math.ceil(widthMm * pxPerMm);
  const height = Math.ceil(heightMm * pxPerMm);
  const grid = gridDefs(pxPerMm);
  const rows = names.map((name, row) => {
    const baseline = (row * ROW_MM + ROW_MM / 2) * pxPerMm;
    const pulseTop = baseline - GAIN_MM_MV * pxPerMm; // 1 mV
    const p0 = 2 * pxPerMm;
    const p1 = 4 * pxPerMm;
    const p2 = 9 * pxPerMm; // 5 mm = 200 ms wide
    const p3 = 11 * pxPerMm;
    return s("g", { class: "ecg-row", dataset: { lead: name } },
      s("path", { class: "ecg-calibration", fill: "none",
        d: `M ${p0} ${baseline} L ${p1} ${baseline} L ${p1} ${pulseTop} L ${p2} ${pulseTop} L ${p2} ${baseline} L ${p3} ${baseline}` }),
      s("text", { class: "ecg-lead-label", x: 2 * pxPerMm, y: row * ROW_MM * pxPerMm + 5 * pxPerMm }, name),
      s("polyline", { class: "ecg-trace", fill: "none", dataset: { lead: name },
        points: tracePoints(strip.leads[name], strip.sample_rate_hz, baseline, pxPerMm) }));
  });
  const ticks = [];
  for (let t = 1; t < seconds; t += 1) {
    ticks.push(s("text", { class: "ecg-second", x: xOf(t, pxPerMm) + 2, y: height - 3 }, `${t} s`));
  }
  return s("svg", {
    class: "ecg-paper", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label,
    dataset: { pxPerMm: String(pxPerMm), leads: names.join(","), seconds: seconds.toFixed(2) },
  },
  grid.defs,
  s("rect", { class: "ecg-grid", x: 0, y: 0, width, height, fill: `url(#${grid.id})` }),
  rows, ticks);
}
