// The console: lists of datasets and models, and a detail pane chosen by the URL
// hash (#/datasets/ID, #/models/ID). Everything goes through the public REST API.
import { askForKey, get, post, uploadCsv } from "./api.js";
import { parseCsv } from "./csv.js";
import { h } from "./dom.js";
import { showDataset } from "./datasets.js";
import { showModel } from "./models.js";
import { say, sayError, uploadedRows } from "./state.js";

const current = () => location.hash.slice(2).split("/");

export async function refreshLists() {
  const [datasets, models] = await Promise.all([get("/v1/datasets?limit=500"), get("/v1/models?limit=500")]);
  const [kind, id] = current();
  const dsBody = document.querySelector("#dataset-table tbody");
  dsBody.replaceChildren(...datasets.items.map((d) =>
    h("tr", { "aria-current": kind === "datasets" && id === d.id ? "true" : null, dataset: { id: d.id } },
      h("td", {}, h("a", { href: `#/datasets/${d.id}` }, d.name || d.id)),
      h("td", {}, `${d.n_samples} × ${d.n_features}`),
      h("td", {}, new Date(d.created_at).toLocaleString()))));
  const mBody = document.querySelector("#model-table tbody");
  mBody.replaceChildren(...models.items.map((m) =>
    h("tr", { "aria-current": kind === "models" && id === m.id ? "true" : null, dataset: { id: m.id } },
      h("td", {}, h("a", { href: `#/models/${m.id}` }, m.name || m.id)),
      h("td", { class: `status-${m.status}` }, m.status),
      h("td", {}, m.version),
      h("td", {}, m.n_components),
      h("td", {}, m.covariance_type))));
  return { datasets: datasets.items, models: models.items };
}

async function route() {
  const [kind, id] = current();
  const pane = document.getElementById("detail");
  try {
    await refreshLists();
    if (kind === "datasets" && id) await showDataset(pane, id);
    else if (kind === "models" && id) await showModel(pane, id);
    else pane.replaceChildren(h("p", {}, "Choose a dataset or a model, upload a CSV file, or create a model."));
  } catch (error) {
    sayError(error);
  }
}

// --- upload: drag and drop, or the file input ----------------------------------------
async function upload(file) {
  const progress = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  progress.hidden = false;
  progress.value = 0;
  status.textContent = `Uploading ${file.name}…`;
  try {
    const text = await file.text();
    const dataset = await uploadCsv(file, file.name.replace(/\.csv$/i, ""), (f) => {
      progress.value = Math.round(100 * f);
    });
    uploadedRows.set(dataset.id, parseCsv(text));
    status.textContent = `Uploaded ${file.name}: ${dataset.n_samples} × ${dataset.n_features}`;
    location.hash = `#/datasets/${dataset.id}`;
  } catch (error) {
    status.textContent = `Upload failed: ${error.message}`;
    sayError(error);
  }
}

const zone = document.getElementById("drop-zone");
zone.addEventListener("dragover", (e) => {
  e.preventDefault();
  zone.classList.add("over");
});
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (e) => {
  e.preventDefault();
  zone.classList.remove("over");
  const file = e.dataTransfer?.files?.[0];
  if (file) upload(file);
});
document.getElementById("file-input").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) upload(file);
  e.target.value = "";
});

// --- the new-model form ----------------------------------------------------------
const NUMBERS = new Set(["n_components", "tol", "reg_covar", "max_iter", "n_init", "random_state", "contamination"]);
document.getElementById("model-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const config = {};
  for (const [k, v] of new FormData(e.target)) {
    if (v === "") continue;
    config[k] = NUMBERS.has(k) ? Number(v) : v;
  }
  try {
    const model = await post("/v1/models", config);
    say(`Created model ${model.name || model.id}`);
    location.hash = `#/models/${model.id}`;
  } catch (error) {
    sayError(error);
  }
});

document.getElementById("key-button").addEventListener("click", async () => {
  if (await askForKey()) route();
});
window.addEventListener("hashchange", () => {
  say("");
  route();
});
route();
