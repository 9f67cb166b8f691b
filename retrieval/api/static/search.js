// The search view: text search (POST /search), image search from a file picked or dropped
// (POST /search/image) and "more like this" (POST /search/similar), shown as a grid of cards
// with "Show more results" pages; the current filter applies to each.

import { postImage, postJson } from "./api.js";
import { append, byId, clear, el, show } from "./dom.js";
import { openDetail } from "./detail.js";
import { showError } from "./errors.js";
import { clearFilters, currentFilter } from "./filters.js";
import { CITE_SIZE, formatScore, hitImage, hitTitle } from "./hits.js";
import { releaseAll, setImage, sized } from "./images.js";
import { withKey } from "./key.js";
import { showView } from "./views.js";

const PAGE_SIZE = 24;

const ui = {
  view: byId("view-search"),
  form: byId("search-form"),
  query: byId("query"),
  mode: byId("search-mode"),
  modality: byId("search-modality"),
  modeNote: byId("search-mode-note"),
  file: byId("image-file"),
  dropZone: byId("drop-zone"),
  summary: byId("query-summary"),
  status: byId("search-status"),
  error: byId("search-error"),
  empty: byId("search-empty"),
  intro: byId("search-intro"),
  results: byId("results"),
  more: byId("more"),
};

const state = {
  search: null, // {kind: "text" | "image" | "similar", query?, file?, id?, label, thumb?}
  offset: 0,
  controller: null,
  queryPreview: null, // the blob: URL of the query image shown in the summary
};

function startSearch(search) {
  state.search = search;
  renderSummary(search);
  return runSearch(true);
}

/** Run the current search again from its first page (after a filter or the key changed). */
export function refreshSearch() {
  if (state.search) {
    runSearch(true);
  }
}

/** "More like this": search with a stored item's vector, in the search view. */
export function searchLike(hit) {
  showView("search");
  startSearch({ kind: "similar", id: hit.id, label: hitTitle(hit),
    thumb: hit.thumbnail_url });
  ui.summary.focus();
}

function renderSummary(search) {
  if (state.queryPreview) {
    URL.revokeObjectURL(state.queryPreview);
    state.queryPreview = null;
  }
  releaseAll(ui.summary);
  clear(ui.summary);
  let picture = null;
  let text;
  if (search.kind === "text") {
    text = ["Results for ", el("q", { text: search.query })];
  } else if (search.kind === "image") {
    state.queryPreview = URL.createObjectURL(search.file);
    picture = el("img", { src: state.queryPreview, alt: `Your query image: ${search.label}`,
      width: 64, height: 64 });
    text = ["Images similar to ", el("q", { text: search.label })];
  } else {
    picture = el("img", { alt: search.label, width: 64, height: 64 });
    setImage(picture, sized(search.thumb, CITE_SIZE), { eager: true });
    text = ["More like ", el("q", { text: search.label })];
  }
  append(ui.summary, [picture, el("p", { className: "summary-text" }, text)]);
  ui.summary.tabIndex = -1;
  show(ui.summary);
}

async function runSearch(reset) {
  const search = state.search;
  if (!search) {
    return;
  }
  if (state.controller) {
    state.controller.abort();
  }
  const controller = new AbortController();
  state.controller = controller;
  const offset = reset ? 0 : state.offset;
  const options = { k: PAGE_SIZE, offset };
  const filter = currentFilter();
  if (filter) {
    options.filter = filter;
  }
  if (ui.modality.value) {
    options.modality = ui.modality.value;
  }
  show(ui.intro, false);
  show(ui.error, false);
  show(ui.empty, false);
  ui.more.disabled = true;
  ui.results.setAttribute("aria-busy", "true");
  ui.view.classList.add("loading");
  ui.status.textContent = reset ? "Searching…" : "Loading more results…";
  try {
    const page = await withKey(() => {
      const signal = controller.signal;
      if (search.kind === "text") {
        const mode = ui.mode.value ? { mode: ui.mode.value } : {};
        return postJson("search", { query: search.query, ...options, ...mode }, { signal });
      }
      if (search.kind === "image") {
        return postImage("search/image", search.file, options, { signal });
      }
      return postJson("search/similar", { id: search.id, ...options }, { signal });
    });
    if (controller !== state.controller) {
      return;
    }
    if (reset) {
      releaseAll(ui.results);
      clear(ui.results);
    }
    const hits = page.hits || [];
    ui.modeNote.textContent = search.kind === "text" && page.mode
      ? `ranked by ${page.mode}` : "";
    hits.forEach((hit, i) => ui.results.append(card(hit, offset + i)));
    state.offset = offset + hits.length;
    const shown = ui.results.children.length;
    show(ui.more, hits.length === PAGE_SIZE);
    if (!shown) {
      renderEmpty(search, filter);
      ui.status.textContent = "No results.";
    } else {
      ui.status.textContent = `Showing ${shown} result${shown === 1 ? "" : "s"}`
        + ` (${Math.round(page.took_ms)} ms)`;
    }
  } catch (error) {
    if (error && error.name === "AbortError") {
      return;
    }
    if (reset) {
      releaseAll(ui.results);
      clear(ui.results);
      show(ui.more, false);
    }
    ui.status.textContent = "";
    showError(ui.error, "Search failed", error);
  } finally {
    if (controller === state.controller) {
      state.controller = null;
      ui.more.disabled = false;
      ui.results.setAttribute("aria-busy", "false");
      ui.view.classList.remove("loading");
    }
  }
}

function renderEmpty(search, filter) {
  clear(ui.empty);
  const what = search.kind === "text" ? ["No results for ", el("q", { text: search.query }), "."]
    : ["No similar images found."];
  ui.empty.append(el("p", { className: "empty-title" }, what));
  if (filter) {
    const button = el("button", { type: "button", className: "ghost small",
      text: "Clear filters" });
    button.addEventListener("click", () => {
      clearFilters();
      refreshSearch();
    });
    ui.empty.append(el("p", {}, "Filters are on; they may exclude every item. ", button));
  } else {
    ui.empty.append(el("p", { text: "Try other words, or search with an image." }));
  }
  show(ui.empty);
}

function card(hit, index) {
  const img = hitImage(hit, hit.thumbnail_url, 256);
  const button = el("button", { type: "button", className: "card", "data-id": hit.id,
    "data-rank": index + 1 },
  el("span", { className: "thumb" }, img),
  el("span", { className: "card-caption", "aria-hidden": "true",
    text: hitTitle(hit) }),
  el("span", { className: "score", text: `score ${formatScore(hit.score)}` }));
  button.addEventListener("click", () => openDetail(hit, button));
  return el("li", { className: "result" }, button);
}

function onSearchSubmit(event) {
  event.preventDefault();
  const query = ui.query.value.trim();
  if (!query) {
    showError(ui.error, "Nothing to search for",
      new Error("Type a few words describing the images you want."));
    ui.query.focus();
    return;
  }
  startSearch({ kind: "text", query, label: query });
}

function searchWithFile(file) {
  if (!file) {
    return;
  }
  if (file.type && !file.type.startsWith("image/")) {
    showError(ui.error, "Not an image",
      new Error(`“${file.name}” is ${file.type}; choose a PNG, JPEG, WebP or GIF image.`));
    return;
  }
  showView("search");
  startSearch({ kind: "image", file, label: file.name || "your image" });
}

function wireDropZone() {
  const zone = ui.dropZone;
  const over = (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  };
  zone.addEventListener("dragenter", over);
  zone.addEventListener("dragover", over);
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const files = event.dataTransfer ? event.dataTransfer.files : null;
    searchWithFile(files && files[0]);
  });
  // A file dropped next to the zone must not navigate away from the page.
  for (const name of ["dragover", "drop"]) {
    window.addEventListener(name, (event) => {
      if (!zone.contains(event.target)) {
        event.preventDefault();
      }
    });
  }
  ui.file.addEventListener("change", () => {
    const file = ui.file.files && ui.file.files[0];
    searchWithFile(file);
    ui.file.value = "";
  });
}

/** The search form, "Show more results", and the image picker and drop zone. */
export function wireSearch() {
  ui.form.addEventListener("submit", onSearchSubmit);
  ui.mode.addEventListener("change", () => {
    if (state.search && state.search.kind === "text") {
      runSearch(true);
    }
  });
  ui.modality.addEventListener("change", () => {
    if (state.search) {
      runSearch(true);
    }
  });
  ui.more.addEventListener("click", () => runSearch(false));
  wireDropZone();
}
