// Charts: a canvas scatter with an SVG overlay (axes, ellipses), an SVG histogram,
// and uPlot line charts (vendored, loaded on first use) for live curves.
import { ellipsePoints, histogram } from "./geometry.js";

const SVG = "http://www.w3.org/2000/svg";
export const COLORS = ["#1f77b4", "#d95f02", "#1b9e77", "#7570b3", "#e7298a",
  "#66a61e", "#a6761d", "#666666", "#17becf", "#bcbd22"];
export const color = (k) => COLORS[k % COLORS.length];

export function svg(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

const PAD = { left: 48, right: 12, top: 10, bottom: 32 };

function scale([lo, hi], [a, b]) {
  const span = hi - lo || 1;
  return (v) => a + ((v - lo) / span) * (b - a);
}

function extent(values, pad = 0.05) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo)) return [0, 1];
  const m = (hi - lo || 1) * pad;
  return [lo - m, hi + m];
}

function ticks([lo, hi], n = 5) {
  const step = 10 ** Math.floor(Math.log10((hi - lo) / n || 1));
  const nice = [1, 2, 5, 10].map((f) => f * step).find((s) => (hi - lo) / s <= n) || step * 10;
  const out = [];
  for (let v = Math.ceil(lo / nice) * nice; v <= hi; v += nice) out.push(+v.toPrecision(12));
  return out;
}

function axes(root, x, y, xDomain, yDomain, w, h, xLabel, yLabel) {
  svg("line", { class: "axis", x1: PAD.left, x2: w - PAD.right, y1: h - PAD.bottom, y2: h - PAD.bottom }, root);
  svg("line", { class: "axis", x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: h - PAD.bottom }, root);
  for (const t of ticks(xDomain)) {
    svg("text", { x: x(t), y: h - PAD.bottom + 14, "text-anchor": "middle" }, root).textContent = t;
  }
  for (const t of ticks(yDomain)) {
    svg("text", { x: PAD.left - 4, y: y(t) + 4, "text-anchor": "end" }, root).textContent = t;
  }
  svg("text", { x: (PAD.left + w - PAD.right) / 2, y: h - 4, "text-anchor": "middle" }, root).textContent = xLabel;
  const label = svg("text", { x: 12, y: (PAD.top + h - PAD.bottom) / 2, "text-anchor": "middle" }, root);
  label.setAttribute("transform", `rotate(-90 12 ${(PAD.top + h - PAD.bottom) / 2})`);
  label.textContent = yLabel;
}

/**
 * Draw points (canvas) and, optionally, component ellipses (SVG) into `figure`.
 * points: [[x, y], ...]; groups: component per point or null; flagged: bool per point or null;
 * ellipses: [{component, mean: [x, y], cov: [a, b, c]}].
 * Returns the milliseconds the drawing took.
 */
export function scatter(area, { points, groups = null, flagged = null, ellipses = [], xLabel, yLabel,
  width = 560, height = 400 }) {
  const started = performance.now();
  area.replaceChildren();
  area.style.width = `${width}px`;
  area.style.height = `${height}px`;
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const outlines = ellipses.flatMap((e) => ellipsePoints(e.mean, e.cov, 2));
  const xDomain = extent(xs.concat(outlines.map((p) => p[0])));
  const yDomain = extent(ys.concat(outlines.map((p) => p[1])));
  const x = scale(xDomain, [PAD.left, width - PAD.right]);
  const y = scale(yDomain, [height - PAD.bottom, PAD.top]);

  const canvas = document.createElement("canvas");
  const ratio = window.devicePixelRatio || 1;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `${points.length} points, ${xLabel} against ${yLabel}`);
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.globalAlpha = points.length > 3000 ? 0.45 : 0.7;
  // one path per colour: a few fill() calls instead of one per point
  const byColor = new Map();
  points.forEach((p, n) => {
    const c = groups ? color(groups[n]) : COLORS[0];
    if (!byColor.has(c)) byColor.set(c, []);
    byColor.get(c).push(n);
  });
  for (const [c, members] of byColor) {
    ctx.fillStyle = c;
    ctx.beginPath();
    for (const n of members) {
      const px = x(points[n][0]);
      const py = y(points[n][1]);
      ctx.moveTo(px + 2, py);
      ctx.arc(px, py, 2, 0, 2 * Math.PI);
    }
    ctx.fill();
  }
  let nFlagged = 0;
  if (flagged) {
    ctx.globalAlpha = 1;
    ctx.strokeStyle = "#b3261e";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach((p, n) => {
      if (!flagged[n]) return;
      nFlagged += 1;
      ctx.moveTo(x(p[0]) + 5, y(p[1]));
      ctx.arc(x(p[0]), y(p[1]), 5, 0, 2 * Math.PI);
    });
    ctx.stroke();
  }
  canvas.dataset.pointCount = points.length;
  canvas.dataset.flaggedCount = nFlagged;
  area.appendChild(canvas);

  const overlay = svg("svg", { width, height, "aria-hidden": "true" }, area);
  axes(overlay, x, y, xDomain, yDomain, width, height, xLabel, yLabel);
  for (const e of ellipses) {
    for (const sigma of [1, 2]) {
      const d = ellipsePoints(e.mean, e.cov, sigma)
        .map(([u, v], t) => `${t ? "L" : "M"}${x(u).toFixed(1)},${y(v).toFixed(1)}`)
        .join("") + "Z";
      svg("path", { class: "ellipse", d, stroke: color(e.component), "data-component": e.component,
        "data-sigma": sigma }, overlay);
    }
  }
  const ms = performance.now() - started;
  area.dataset.drawMs = ms.toFixed(1);
  return ms;
}

/** SVG histogram of `values` with a threshold line; bins past it are highlighted. */
export function scoreHistogram(area, values, threshold, { bins = 40, width = 560, height = 220 } = {}) {
  area.replaceChildren();
  const sorted = [...values].sort((a, b) => a - b);
  const hiClip = sorted[Math.floor(0.995 * (sorted.length - 1))];
  const lo = sorted[0];
  const hi = Math.max(hiClip, threshold) + 1e-9;
  const { edges, counts } = histogram(values, bins, lo, hi);
  const x = scale([lo, hi], [PAD.left, width - PAD.right]);
  const yDomain = [0, Math.max(...counts)];
  const y = scale(yDomain, [height - PAD.bottom, PAD.top]);
  const root = svg("svg", { width, height, role: "img",
    "aria-label": `Histogram of ${values.length} anomaly scores; threshold ${threshold.toFixed(3)}` }, area);
  counts.forEach((count, b) => {
    svg("rect", { class: edges[b] >= threshold ? "bar flagged" : "bar", x: x(edges[b]) + 0.5,
      width: Math.max(1, x(edges[b + 1]) - x(edges[b]) - 1), y: y(count),
      height: y(0) - y(count), "data-count": count }, root);
  });
  axes(root, x, y, [lo, hi], yDomain, width, height, "anomaly score (−log-likelihood)", "points");
  svg("line", { class: "threshold", x1: x(threshold), x2: x(threshold), y1: PAD.top,
    y2: height - PAD.bottom, "data-threshold": threshold }, root);
}

let uPlotModule = null;

/** uPlot, imported (with its stylesheet) the first time a line chart is drawn. */
export async function loadUPlot() {
  if (!uPlotModule) {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = "/ui/static/vendor/uplot/uPlot.min.css";
    document.head.appendChild(link);
    uPlotModule = (await import("../vendor/uplot/uPlot.esm.js")).default;
  }
  return uPlotModule;
}

/** A uPlot line chart: x values, series [{label, values, color}]. */
export async function lineChart(area, { title, xLabel, yLabel, x, series, width = 560, height = 260 }) {
  const uPlot = await loadUPlot();
  area.replaceChildren();
  return new uPlot(
    {
      title,
      width,
      height,
      scales: { x: { time: false } },
      axes: [{ label: xLabel }, { label: yLabel, size: 70 }],
      series: [{ label: xLabel }, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2,
        spanGaps: true, points: { show: true, size: 4 } }))],
    },
    [x, ...series.map((s) => s.values)],
    area,
  );
}
