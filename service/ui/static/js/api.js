// The public REST API, as the console uses it. One place adds the API key
// (asked for on a 401, kept in sessionStorage) and turns problem+json into errors.
import { readEventStream } from "./sse.js";

const KEY = "gmm-service.api-key";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

let asking = null;

/** Show the key dialog; resolves true when the user gave a key. */
export function askForKey() {
  if (asking) return asking;
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  input.value = apiKey() || "";
  asking = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        asking = null;
        if (dialog.returnValue === "save" && input.value.trim()) {
          sessionStorage.setItem(KEY, input.value.trim());
          resolve(true);
        } else resolve(false);
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    input.focus();
  });
  return asking;
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: response.statusText, status: response.status };
  }
}

/** Fetch with the key; on 401 ask for a key and try again (once per key given). */
async function authorized(path, init = {}) {
  for (;;) {
    const response = await fetch(path, { ...init, headers: headers(init.headers) });
    if (response.status !== 401) return response;
    if (!(await askForKey())) throw new ApiError(401, await problemOf(response));
  }
}

/** A JSON request; resolves to the decoded body (null for 204). */
export async function request(method, path, body) {
  const init = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  const response = await authorized(path, init);
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response.status === 204 ? null : response.json();
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);

/** POST a CSV file as a dataset, reporting upload progress (0..1). */
export function uploadCsv(file, name, onProgress) {
  const send = () =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `/v1/datasets?name=${encodeURIComponent(name)}`);
      xhr.setRequestHeader("Content-Type", "text/csv");
      const key = apiKey();
      if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          body = { title: xhr.statusText };
        }
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress(1);
          resolve(body);
        } else reject(new ApiError(xhr.status, body));
      };
      xhr.onerror = () => reject(new ApiError(0, { detail: "network error during upload" }));
      xhr.send(file);
    });
  return (async () => {
    for (;;) {
      try {
        return await send();
      } catch (error) {
        if (error.status !== 401 || !(await askForKey())) throw error;
      }
    }
  })();
}

/** Follow a job's SSE stream; onEvent({event, data}) per event. Abort with signal. */
export async function followJob(jobId, onEvent, signal) {
  const response = await authorized(`/v1/jobs/${encodeURIComponent(jobId)}/events`, {
    headers: { Accept: "text/event-stream" },
    signal,
  });
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  await readEventStream(response, (message) => {
    let data = null;
    try {
      data = JSON.parse(message.data);
    } catch {
      data = message.data;
    }
    onEvent({ event: message.event, data });
  });
}
