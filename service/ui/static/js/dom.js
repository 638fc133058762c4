// A tiny DOM builder: h("tag", {attrs, onclick}, children...). Text is set as text,
// never parsed as HTML, so names from the API cannot inject markup.
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export const fmt = (v, digits = 4) =>
  v === null || v === undefined ? "—" : typeof v === "number" ? +v.toPrecision(digits) : String(v);

export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

let nextId = 0;
/** A labelled <select> of feature indices. */
export function featureSelect(label, n, value, onchange) {
  const id = `f${nextId++}`;
  const select = h("select", { id, onchange },
    Array.from({ length: n }, (_, j) => h("option", { value: j, selected: j === value }, `feature ${j}`)));
  return [h("label", { for: id }, label), select];
}
