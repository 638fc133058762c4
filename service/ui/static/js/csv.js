// Client-side CSV parsing for the dataset preview (the API has no route that
// returns a dataset's rows). Same rules as the service: comma-separated numbers,
// an optional header row, blank lines skipped.

/** {header: string[] | null, rows: number[][]} from CSV text. */
export function parseCsv(text) {
  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\n|\r/).filter((l) => l.trim());
  let header = null;
  const rows = [];
  lines.forEach((line, i) => {
    const cells = line.split(",").map((c) => c.trim().replace(/^"(.*)"$/, "$1"));
    const values = cells.map(Number);
    if (i === 0 && values.some((v, j) => cells[j] === "" || Number.isNaN(v))) header = cells;
    else rows.push(values);
  });
  return { header, rows };
}
