// What the page's modules share: the notice line and the rows of CSV files uploaded in this tab.
import { ApiError } from "./api.js";

/** Parsed rows of CSV files uploaded in this tab, by dataset id (for the preview). */
export const uploadedRows = new Map();

export function say(message, isError = false) {
  const notice = document.getElementById("notice");
  notice.textContent = message;
  notice.className = isError ? "error" : "";
}

export function sayError(error) {
  say(error instanceof ApiError ? `${error.status || ""} ${error.message}`.trim() : String(error), true);
}
