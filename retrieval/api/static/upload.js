// "Add images": drop files or a folder, or pick them, upload them in one POST /ingest, follow
// the job's event stream (GET /ingest/{id}/events) with a progress bar, show its rejects with
// their reasons, and tell app.js once images were added (it reloads the collection summary and
// the current search). "Stop" cancels the job between batches (DELETE /ingest/{id}); what was
// written stays.

import { ApiError, apiUrl, getKey, readEvents } from "./api.js";
import { append, byId, clear, el, show } from "./dom.js";
import { showError } from "./errors.js";
import { withKey } from "./key.js";

const ui = {
  button: byId("add-button"),
  dialog: byId("add-dialog"),
  drop: byId("add-drop"),
  files: byId("add-files"),
  folder: byId("add-folder"),
  selection: byId("add-selection"),
  progress: byId("add-progress"),
  status: byId("add-status"),
  error: byId("add-error"),
  rejectsBox: byId("add-rejects-box"),
  rejectsTitle: byId("add-rejects-title"),
  rejects: byId("add-rejects"),
  upload: byId("add-upload"),
  stop: byId("add-stop"),
  close: byId("add-close"),
};

const state = {
  chosen: [], // [{file, name}]: name is the path inside a picked or dropped folder
  job: null, // the job being followed
  busy: false,
  controller: null,
  onAdded: () => {}, // app.js: reload the collection summary and rerun the current search
};

function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

function formatBytes(n) {
  if (n < 1024) {
    return `${n} B`;
  }
  const units = ["KB", "MB", "GB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function choose(entries) {
  state.chosen = entries;
  const bytes = entries.reduce((sum, entry) => sum + entry.file.size, 0);
  ui.selection.textContent = entries.length
    ? `${plural(entries.length, "file")} chosen (${formatBytes(bytes)}).`
    : "No files chosen.";
  ui.upload.disabled = state.busy || !entries.length;
}

function fromInput(input) {
  return [...input.files].map((file) => ({ file, name: file.webkitRelativePath || file.name }));
}

// A dropped folder: its files, with their paths inside it (FileSystemEntry API).
function readEntries(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

async function entryFiles(entry, prefix = "") {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ file, name: `${prefix}${entry.name}` }];
  }
  if (!entry.isDirectory) {
    return [];
  }
  const reader = entry.createReader();
  const out = [];
  for (;;) {
    const batch = await readEntries(reader); // at most ~100 at a time: read until empty
    if (!batch.length) {
      return out;
    }
    for (const child of batch) {
      out.push(...await entryFiles(child, `${prefix}${entry.name}/`));
    }
  }
}

async function fromDrop(transfer) {
  const entries = [...(transfer.items || [])]
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
    .filter(Boolean);
  if (!entries.length) {
    return [...transfer.files].map((file) => ({ file, name: file.name }));
  }
  const out = [];
  for (const entry of entries) {
    out.push(...await entryFiles(entry));
  }
  return out;
}

function setStatus(text) {
  ui.status.textContent = text;
}

function setProgress(done, total) {
  show(ui.progress);
  if (total) {
    ui.progress.max = total;
    ui.progress.value = Math.min(done, total);
  } else {
    ui.progress.removeAttribute("value"); // indeterminate
  }
}

function errorFromXhr(xhr) {
  let type = "http_error";
  let message = `${xhr.status} ${xhr.statusText || "error"}`.trim();
  try {
    const body = JSON.parse(xhr.responseText);
    if (body && body.error && typeof body.error.message === "string") {
      type = String(body.error.type || type);
      message = body.error.message;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(xhr.status, type, message);
}

// The upload as XMLHttpRequest: fetch has no upload progress.
function sendFiles(entries, onProgress) {
  const form = new FormData();
  for (const entry of entries) {
    form.append("files", entry.file, entry.name);
  }
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", apiUrl("ingest"));
    const key = getKey();
    if (key) {
      xhr.setRequestHeader("X-API-Key", key);
    }
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) {
        onProgress(event.loaded, event.total);
      }
    });
    xhr.addEventListener("load", () => {
      if (xhr.status === 202) {
        resolve(JSON.parse(xhr.responseText));
      } else {
        reject(errorFromXhr(xhr));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network_error",
      "The upload did not reach the server. Is it running?")));
    xhr.send(form);
  });
}

async function* jobEvents(id, signal) {
  const headers = new Headers({ Accept: "text/event-stream" });
  const key = getKey();
  if (key) {
    headers.set("X-API-Key", key);
  }
  const response = await fetch(apiUrl(`ingest/${encodeURIComponent(id)}/events`),
    { headers, signal });
  if (!response.ok) {
    throw new ApiError(response.status, "http_error",
      `Could not follow the upload (HTTP ${response.status}).`);
  }
  yield* readEvents(response);
}

function countsText(job) {
  const c = job.counts;
  const parts = [`${c.ingested} added`];
  if (c.duplicates) {
    parts.push(`${c.duplicates} already there`);
  }
  if (c.rejected) {
    parts.push(`${c.rejected} rejected`);
  }
  return parts.join(", ");
}

function renderJob(job) {
  state.job = job;
  ui.dialog.dataset.state = job.state;
  setProgress(job.progress.done, job.progress.total);
  const total = job.progress.total ? ` of ${job.progress.total}` : "";
  if (job.state === "queued") {
    setStatus("Waiting for another upload to this collection to finish…");
  } else if (job.state === "running") {
    setStatus(`Adding images: ${job.progress.done}${total} done (${countsText(job)}).`);
  } else {
    setStatus(job.message);
  }
  renderRejects(job.rejects, job.counts.rejected);
}

function renderRejects(rejects, count) {
  clear(ui.rejects);
  show(ui.rejectsBox, rejects.length > 0);
  if (!rejects.length) {
    return;
  }
  ui.rejectsTitle.textContent = count > rejects.length
    ? `Not added: ${count} files (the first ${rejects.length} below)`
    : `Not added: ${plural(count, "file")}`;
  append(ui.rejects, rejects.map((reject) => el("li", { className: "reject" },
    el("span", { className: "reject-source", text: reject.source }),
    el("span", { className: "reject-reason", text: reject.reason }))));
}

function setBusy(busy) {
  state.busy = busy;
  ui.dialog.dataset.busy = String(busy);
  ui.upload.disabled = busy || !state.chosen.length;
  ui.files.disabled = busy;
  ui.folder.disabled = busy;
  show(ui.stop, busy);
}

async function follow(job) {
  renderJob(job);
  state.controller = new AbortController();
  for await (const { event, data } of jobEvents(job.id, state.controller.signal)) {
    if (event === "progress" || event === "done") {
      renderJob(data);
    } else if (event === "error") {
      throw new ApiError(503, "server_stopping", data.message);
    }
  }
  return state.job;
}

async function upload() {
  const entries = state.chosen;
  if (!entries.length || state.busy) {
    return;
  }
  setBusy(true);
  show(ui.error, false);
  renderRejects([], 0);
  delete ui.dialog.dataset.state;
  try {
    setStatus(`Uploading ${plural(entries.length, "file")}…`);
    const job = await withKey(() => sendFiles(entries, (loaded, total) => {
      setProgress(loaded, total);
      setStatus(`Uploading ${plural(entries.length, "file")}: `
        + `${formatBytes(loaded)} of ${formatBytes(total)}…`);
    }));
    const finished = await follow(job);
    choose([]);
    ui.files.value = "";
    ui.folder.value = "";
    if (finished && finished.counts.ingested) {
      state.onAdded();
    }
  } catch (error) {
    if (!(error && error.name === "AbortError")) {
      showError(ui.error, "The images could not be added", error);
      setStatus("");
    }
  } finally {
    state.controller = null;
    setBusy(false);
  }
}

async function stop() {
  const job = state.job;
  if (!job) {
    return;
  }
  ui.stop.disabled = true;
  setStatus("Stopping after the current batch…");
  try {
    await withKey(async () => {
      const headers = new Headers({ Accept: "application/json" });
      const key = getKey();
      if (key) {
        headers.set("X-API-Key", key);
      }
      const response = await fetch(apiUrl(`ingest/${encodeURIComponent(job.id)}`),
        { method: "DELETE", headers });
      if (!response.ok && response.status !== 409) { // 409: it finished meanwhile
        throw new ApiError(response.status, "http_error",
          `Could not stop the upload (HTTP ${response.status}).`);
      }
    });
  } catch (error) {
    showError(ui.error, "The upload could not be stopped", error);
  } finally {
    ui.stop.disabled = false;
  }
}

function open() {
  if (!ui.dialog.open) {
    ui.dialog.showModal();
  }
}

/** The "Add images" button, its dialog, the drop zone and the pickers; ``onAdded`` runs once
 * a job has added images. */
export function wireUpload({ onAdded }) {
  state.onAdded = onAdded;
  show(ui.button);
  ui.button.addEventListener("click", open);
  ui.close.addEventListener("click", () => ui.dialog.close());
  ui.upload.addEventListener("click", upload);
  ui.stop.addEventListener("click", stop);
  ui.files.addEventListener("change", () => choose(fromInput(ui.files)));
  ui.folder.addEventListener("change", () => choose(fromInput(ui.folder)));
  ui.drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    ui.drop.classList.add("dragging");
  });
  ui.drop.addEventListener("dragleave", () => ui.drop.classList.remove("dragging"));
  ui.drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    ui.drop.classList.remove("dragging");
    if (!state.busy) {
      choose(await fromDrop(event.dataTransfer));
    }
  });
}
