// One model: its facts, fit and selection forms, the live lower-bound curve of a
// running job (from the job's SSE stream), and, once fitted, pictures of the mixture.
import { ApiError, followJob, get, post } from "./api.js";
import { COLORS, color, lineChart, scatter, scoreHistogram } from "./charts.js";
import { facts, featureSelect, fmt, h } from "./dom.js";
import { marginalCovariances } from "./geometry.js";
import { refreshLists } from "./main.js";
import { say, sayError } from "./state.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
let stream = null; // the AbortController of the job stream this pane follows

const enc = encodeURIComponent;

export async function showModel(pane, id) {
  stream?.abort();
  stream = null;
  const [model, datasets] = await Promise.all([get(`/v1/models/${enc(id)}`), get("/v1/datasets?limit=500")]);
  const summary = model.fit_summary;
  const jobArea = h("div", { id: "job" });
  pane.replaceChildren(
    h("h2", { id: "detail-title" }, `Model ${model.name || model.id}`),
    facts([
      ["id", model.id],
      ["status", h("span", { class: `status-${model.status}`, "data-testid": "model-status" }, model.status)],
      ["version", model.active_version != null ? `${model.version} (active ${model.active_version})` : model.version],
      ["components", model.n_components], ["covariance", model.covariance_type],
      ["features", fmt(model.n_features)],
      ["fit", summary ? `${summary.converged ? "converged" : "not converged"} after ${summary.n_iter} iterations; ` +
        `lower bound ${fmt(summary.lower_bound, 6)}, BIC ${fmt(summary.bic, 6)}, AIC ${fmt(summary.aic, 6)}` : "—"],
      ["anomaly threshold", fmt(model.anomaly_threshold)],
    ]),
    actions(model, datasets.items, jobArea),
    jobArea,
  );
  if (model.status === "fitting") {
    const running = await get(`/v1/jobs?model_id=${enc(id)}&limit=500`);
    const job = running.items.find((j) => !TERMINAL.has(j.status));
    if (job) showJob(jobArea, job, model);
  }
  if (model.status === "ready") {
    const fitted = h("div", { id: "fitted" });
    pane.append(fitted);
    await fittedViews(fitted, model);
  }
}

function actions(model, datasets, jobArea) {
  const error = h("p", { class: "error", role: "alert", "data-testid": "action-error" });
  const dataset = h("select", { id: "fit-dataset", required: true },
    datasets.map((d) => h("option", { value: d.id }, `${d.name || d.id} (${d.n_samples} × ${d.n_features})`)));
  const kMax = h("input", { id: "select-kmax", type: "number", min: 1, value: Math.max(6, model.n_components) });
  const start = async (path, body) => {
    error.textContent = "";
    try {
      const job = await post(`/v1/models/${enc(model.id)}/${path}`, body);
      say(`Started ${job.kind} job ${job.id}`);
      refreshLists();
      showJob(jobArea, job, model);
    } catch (e) {
      error.textContent = e instanceof ApiError ? `${e.status}: ${e.message}` : String(e);
    }
  };
  const noData = datasets.length === 0;
  return h("div", { class: "panel" },
    h("div", { class: "row" },
      h("label", { for: "fit-dataset" }, "Dataset"), dataset,
      h("button", { type: "button", id: "fit-button", disabled: noData,
        onclick: () => start("fit", { dataset_id: dataset.value }) }, "Fit")),
    h("div", { class: "row" },
      h("label", { for: "select-kmax" }, "Choose K from 1 to"), kMax,
      h("button", { type: "button", id: "select-button", class: "secondary", disabled: noData,
        onclick: () => start("select", { dataset_id: dataset.value, n_components: { min: 1, max: +kMax.value } }) },
      "Select K and covariance type")),
    noData ? h("p", {}, "Upload a dataset to fit this model.") : null,
    error);
}

// --- a running job ------------------------------------------------------------------

/** Follow `job` live: status, the lower bound per iteration (one series per run), cancel. */
function showJob(area, job, model) {
  stream?.abort();
  const controller = new AbortController();
  stream = controller;
  const status = h("output", { "data-testid": "job-status", class: `status-${job.status}` }, job.status);
  const where = h("output", { "data-testid": "job-iteration" }, "");
  const chartArea = h("div", { "data-testid": "lower-bound-chart", "data-points": 0 });
  const cancel = h("button", { type: "button", id: "cancel-button", class: "secondary",
    onclick: async () => {
      try {
        await post(`/v1/jobs/${enc(job.id)}/cancel`);
      } catch (e) {
        sayError(e);
      }
    } }, "Cancel job");
  area.replaceChildren(h("section", { class: "panel", "aria-labelledby": "job-title" },
    h("h3", { id: "job-title" }, `${job.kind} job ${job.id}`),
    h("div", { class: "row" }, "Status:", status, where, cancel),
    h("figure", {}, chartArea, h("figcaption", {}, "Lower bound (mean log-likelihood) per EM iteration, live"))));

  const runs = new Map(); // run key -> Map(iteration -> lower bound)
  let chart = null;
  let pending = false;
  let drawnRuns = 0;
  const redraw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(async () => {
      pending = false;
      const iterations = [...new Set([...runs.values()].flatMap((r) => [...r.keys()]))].sort((a, b) => a - b);
      const series = [...runs.entries()].map(([key, r], n) => ({ label: key, color: color(n),
        values: iterations.map((i) => (r.has(i) ? r.get(i) : null)) }));
      const count = [...runs.values()].reduce((s, r) => s + r.size, 0);
      if (!chart || drawnRuns !== series.length) {
        chart?.destroy();
        chart = await lineChart(chartArea, { xLabel: "iteration", yLabel: "lower bound", x: iterations, series });
        drawnRuns = series.length;
      } else {
        chart.setData([iterations, ...series.map((s) => s.values)]);
      }
      chartArea.dataset.points = count;
    });
  };
  const record = (progress) => {
    if (!progress || progress.lower_bound == null || !progress.iteration) return;
    const c = progress.candidate; // a selection job: the candidate being fitted
    const key = (c ? `K=${c.n_components} ${c.covariance_type}, ` : "") + `init ${progress.init + 1}`;
    if (!runs.has(key)) runs.set(key, new Map());
    runs.get(key).set(progress.iteration, progress.lower_bound);
    redraw();
  };
  const onEvent = ({ event, data }) => {
    const progress = data.progress || data; // the whole job, or its progress alone
    status.textContent = data.status || event;
    status.className = `status-${data.status || event}`;
    if (progress.iteration != null) {
      where.textContent = `iteration ${progress.iteration} of ${progress.max_iter}` +
        (progress.n_init > 1 ? `, initialisation ${progress.init + 1} of ${progress.n_init}` : "") +
        (progress.candidate ? `, candidate ${progress.candidate.index + 1} of ${progress.candidate.total} ` +
          `(K=${progress.candidate.n_components}, ${progress.candidate.covariance_type})` : "") +
        (progress.lower_bound != null ? `, lower bound ${fmt(progress.lower_bound, 8)}` : "");
    }
    record(progress);
    if (TERMINAL.has(event) || event === "deleted") {
      cancel.disabled = true;
      const history = data.lower_bound_history || [];
      if (runs.size <= 1 && history.length > (runs.values().next().value?.size || 0)) {
        runs.clear();
        runs.set(`init ${(progress.init || 0) + 1}`, new Map(history.map((lb, i) => [i + 1, lb])));
        redraw();
      }
      if (data.error) say(`${event}: ${data.error.detail}`, true);
      else say(`Job ${job.id} ${event}`);
      refreshLists();
      if (event === "succeeded" && location.hash === `#/models/${model.id}`) {
        const fitted = document.getElementById("fitted") || h("div", { id: "fitted" });
        area.after(fitted);
        get(`/v1/models/${enc(model.id)}`).then((m) => fittedViews(fitted, m)).catch(sayError);
      }
    }
  };
  if (job.lower_bound_history?.length) {
    job.lower_bound_history.forEach((lb, i) => record({ init: job.progress.init, iteration: i + 1, lower_bound: lb }));
  }
  followJob(job.id, onEvent, controller.signal).catch((e) => {
    if (e.name !== "AbortError") sayError(e);
  });
}

// --- a fitted model -----------------------------------------------------------------

const DIAGONAL = {
  full: (cov, k, j) => cov[k][j][j],
  tied: (cov, _k, j) => cov[j][j],
  diag: (cov, k, j) => cov[k][j],
  spherical: (cov, k) => cov[k],
};

async function fittedViews(root, model) {
  const base = `/v1/models/${enc(model.id)}`;
  const d = model.n_features;
  let [fx, fy] = [0, Math.min(1, d - 1)];
  let parameters = null;
  let sample = null;
  let anomalies = null;
  const scatterArea = h("div", { class: "plot-area", "data-testid": "model-scatter" });
  const histArea = h("div", { "data-testid": "score-histogram" });
  const legend = h("p", { class: "legend" });
  const caption = h("figcaption", {});
  const histCaption = h("figcaption", {});
  const size = h("input", { id: "sample-size", type: "number", min: 1, max: 100000, value: 2000 });
  const draw = () => {
    const ellipses = marginalCovariances(parameters, fx, fy).map((cov, k) => ({
      component: k, cov, mean: [parameters.means[k][fx], parameters.means[k][fy]] }));
    const ms = scatter(scatterArea, { points: sample.samples.map((r) => [r[fx], r[fy]]),
      groups: sample.components, flagged: anomalies.is_anomaly, ellipses,
      xLabel: `feature ${fx}`, yLabel: `feature ${fy}` });
    caption.textContent = `${sample.samples.length} sampled points coloured by component, 1σ (solid) and ` +
      `2σ (dashed) ellipses; flagged anomalies ringed in red. Drawn in ${ms.toFixed(0)} ms.`;
  };
  const load = async () => {
    const n = Math.max(1, Math.min(100000, +size.value || 2000));
    sample = await post(`${base}/sample`, { n_samples: n, random_state: 0 });
    anomalies = await post(`${base}/anomalies`, { data: sample.samples });
    draw();
    scoreHistogram(histArea, anomalies.scores, anomalies.threshold);
    const flagged = anomalies.is_anomaly.filter(Boolean).length;
    histCaption.textContent = `Anomaly scores of the ${n} sampled points; threshold ${fmt(anomalies.threshold)} ` +
      `(red line): ${flagged} flagged.`;
  };
  root.replaceChildren(
    h("h3", {}, "The mixture"),
    h("div", { class: "row" },
      featureSelect("x", d, fx, (e) => { fx = +e.target.value; draw(); }),
      featureSelect("y", d, fy, (e) => { fy = +e.target.value; draw(); }),
      h("label", { for: "sample-size" }, "Points"), size,
      h("button", { type: "button", id: "resample-button", onclick: () => load().catch(sayError) }, "Draw sample")),
    legend,
    h("figure", {}, scatterArea, caption),
    h("h3", {}, "Anomaly scores"),
    h("figure", {}, histArea, histCaption),
  );
  parameters = await get(`${base}/parameters`);
  legend.replaceChildren(...parameters.weights.map((w, k) =>
    h("span", {}, h("span", { class: "swatch", style: `background:${COLORS[k % COLORS.length]}` }),
      `component ${k} (weight ${fmt(w, 3)})`)));
  await load();
  root.append(parametersTable(parameters));
  const more = h("div", {});
  root.append(more);
  await Promise.all([selectionCurves(more, model), versions(more, model)]);
}

function parametersTable(p) {
  const shown = Math.min(p.means[0].length, 6);
  const features = Array.from({ length: shown }, (_, j) => j);
  const variance = DIAGONAL[p.covariance_type];
  return h("section", { "aria-labelledby": "params-title" },
    h("h3", { id: "params-title" }, "Parameters"),
    h("div", { class: "scroll" }, h("table", { "data-testid": "parameters-table" },
      h("caption", {}, `Weights, means and variances (${p.covariance_type} covariance)` +
        (shown < p.means[0].length ? `; first ${shown} of ${p.means[0].length} features` : "")),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "component"), h("th", { scope: "col" }, "weight"),
        features.map((j) => h("th", { scope: "col" }, `mean ${j}`)),
        features.map((j) => h("th", { scope: "col" }, `var ${j}`)))),
      h("tbody", {}, p.weights.map((w, k) => h("tr", {},
        h("th", { scope: "row" }, h("span", { class: "swatch", style: `background:${color(k)}` }), k),
        h("td", {}, fmt(w)),
        features.map((j) => h("td", {}, fmt(p.means[k][j]))),
        features.map((j) => h("td", {}, fmt(variance(p.covariances, k, j))))))))));
}

/** BIC and AIC by K, one line per covariance type, when a selection job made the model. */
async function selectionCurves(root, model) {
  const jobs = await get(`/v1/jobs?model_id=${enc(model.id)}&status=succeeded&limit=500`);
  const last = jobs.items.sort((a, b) => (a.finished_at < b.finished_at ? 1 : -1))[0];
  const candidates = last?.kind === "select" ? last.result?.candidates : null;
  if (!candidates?.length) return;
  const ks = [...new Set(candidates.map((c) => c.n_components))].sort((a, b) => a - b);
  const types = [...new Set(candidates.map((c) => c.covariance_type))];
  const section = h("section", { "aria-labelledby": "selection-title" },
    h("h3", { id: "selection-title" }, "Model selection"),
    h("p", {}, `Best by ${last.result.criterion}: K = ${last.result.best.n_components}, ` +
      `${last.result.best.covariance_type} (lower is better).`));
  root.append(section);
  for (const criterion of ["bic", "aic"]) {
    const area = h("div", { "data-testid": `selection-${criterion}` });
    section.append(h("figure", {}, area, h("figcaption", {}, `${criterion.toUpperCase()} by K`)));
    await lineChart(area, { xLabel: "K", yLabel: criterion.toUpperCase(), x: ks,
      series: types.map((t, n) => ({ label: t, color: color(n), values: ks.map((k) =>
        candidates.find((c) => c.n_components === k && c.covariance_type === t)?.[criterion] ?? null) })) });
  }
}

/** The version history, with an activate button per inactive version. */
async function versions(root, model) {
  const section = h("section", { "aria-labelledby": "versions-title" }, h("h3", { id: "versions-title" }, "Versions"));
  root.append(section);
  let page;
  try {
    page = await get(`/v1/models/${enc(model.id)}/versions`);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) {
      section.append(h("p", { "data-testid": "versions-unavailable" },
        `Version history is not available from this server (${e.status}: ${e.message}).`));
      return;
    }
    throw e;
  }
  section.append(h("table", { "data-testid": "versions-table" },
    h("thead", {}, h("tr", {}, ["version", "source", "created", "lower bound", ""].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, page.items.map((v) => h("tr", {},
      h("td", {}, v.version + (v.active ? " (active)" : "")), h("td", {}, v.source),
      h("td", {}, new Date(v.created_at).toLocaleString()), h("td", {}, fmt(v.fit_summary?.lower_bound, 6)),
      h("td", {}, v.active ? "" : h("button", { type: "button", class: "secondary",
        onclick: async () => {
          try {
            await post(`/v1/models/${enc(model.id)}/activate`, { version: v.version });
            await showModel(document.getElementById("detail"), model.id);
            say(`Version ${v.version} is active`);
          } catch (err) {
            sayError(err);
          }
        } }, `Activate ${v.version}`)))))));
}
