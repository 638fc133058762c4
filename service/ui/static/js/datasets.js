// One dataset: its shape, and a scatter of two chosen features when its rows are
// known in this tab (the CSV was uploaded here; the API does not return rows).
import { get } from "./api.js";
import { scatter } from "./charts.js";
import { facts, featureSelect, h } from "./dom.js";
import { uploadedRows } from "./state.js";

export async function showDataset(pane, id) {
  const d = await get(`/v1/datasets/${encodeURIComponent(id)}`);
  const parsed = uploadedRows.get(id);
  const heading = h("h2", { id: "detail-title", tabindex: "-1" }, `Dataset ${d.name || d.id}`);
  pane.replaceChildren(heading,
    facts([["id", d.id], ["shape", `${d.n_samples} rows × ${d.n_features} features`],
      ["size", `${d.size_bytes} bytes`], ["sha256", d.sha256.slice(0, 16) + "…"]]));
  if (!parsed) {
    pane.append(h("p", {}, "No preview: the rows of a dataset are shown only for a CSV uploaded in this tab."));
    return;
  }
  const area = h("div", { class: "plot-area", "data-testid": "dataset-scatter" });
  let [fx, fy] = [0, Math.min(1, d.n_features - 1)];
  const names = (j) => parsed.header?.[j] || `feature ${j}`;
  const draw = () =>
    scatter(area, { points: parsed.rows.map((r) => [r[fx], r[fy]]), xLabel: names(fx), yLabel: names(fy) });
  pane.append(
    h("h3", {}, "Preview"),
    h("div", { class: "row" },
      featureSelect("x", d.n_features, fx, (e) => { fx = +e.target.value; draw(); }),
      featureSelect("y", d.n_features, fy, (e) => { fy = +e.target.value; draw(); })),
    h("figure", {}, area, h("figcaption", {}, `${parsed.rows.length} rows from the uploaded file`)),
  );
  draw();
}
