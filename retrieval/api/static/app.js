// mmrag web UI: text and image search, result details, "more like this", metadata filters and
// a streaming chat that shows the cited images next to the [n] markers. Plain ES modules, no
// build step; everything comes from this server (see the page's Content-Security-Policy).

import {
  ApiError, apiUrl, clearKey, getJson, getKey, imageObjectUrl, isKeyRemembered, postImage,
  postJson, setKey, streamChat,
} from "./api.js";
import { append, clear, el, show } from "./dom.js";

const PAGE_SIZE = 24;
const DETAIL_SIZE = 512;
const CITE_SIZE = 96;
const KEY_NEEDED = "This server needs an API key: use the “API key” button at the top to "
  + "enter it.";

const $ = (id) => document.getElementById(id);
const ui = {
  tabs: { search: $("tab-search"), chat: $("tab-chat") },
  views: { search: $("view-search"), chat: $("view-chat") },
  collectionInfo: $("collection-info"),
  keyButton: $("key-button"),
  searchForm: $("search-form"),
  query: $("query"),
  file: $("image-file"),
  dropZone: $("drop-zone"),
  filters: $("filters"),
  filterFields: $("filter-fields"),
  filterCount: $("filter-count"),
  filtersNote: $("filters-note"),
  filterClear: $("filter-clear"),
  summary: $("query-summary"),
  status: $("search-status"),
  error: $("search-error"),
  empty: $("search-empty"),
  intro: $("search-intro"),
  results: $("results"),
  more: $("more"),
  chatLog: $("chat-log"),
  chatIntro: $("chat-intro"),
  chatForm: $("chat-form"),
  chatInput: $("chat-input"),
  chatSend: $("chat-send"),
  chatStop: $("chat-stop"),
  chatNew: $("chat-new"),
  chatStatus: $("chat-status"),
  chatError: $("chat-error"),
  chatFilterNote: $("chat-filter-note"),
  detail: $("detail"),
  detailImage: $("detail-image"),
  detailTitle: $("detail-title"),
  detailMeta: $("detail-meta"),
  detailSimilar: $("detail-similar"),
  detailClose: $("detail-close"),
  keyDialog: $("key-dialog"),
  keyForm: $("key-form"),
  keyMessage: $("key-message"),
  keyInput: $("key-input"),
  keyRemember: $("key-remember"),
  keyError: $("key-error"),
  keyForget: $("key-forget"),
  keyCancel: $("key-cancel"),
};

const state = {
  search: null, // {kind: "text" | "image" | "similar", query?, file?, id?, label, thumb?}
  offset: 0,
  controller: null,
  filterControls: [],
  detailHit: null,
  detailOpener: null,
  chat: { messages: [], controller: null },
  keyPrompt: null,
  keyResolve: null,
  keyRequired: false,
  queryPreview: null,
  collection: "loading", // "loading" | "loaded" | "failed": the header and filter fields
};

// ----- API key ---------------------------------------------------------------------------------

/**
 * Run an API call; on 401 ask for the key and try again (until it works or the user cancels).
 * Background calls pass prompt: false (they fail with the message instead of asking).
 */
async function withKey(task, { prompt = true } = {}) {
  for (;;) {
    try {
      return await task();
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) {
        throw error;
      }
      markKeyRequired();
      if (!prompt) {
        throw new ApiError(401, "unauthorized", KEY_NEEDED);
      }
      const refused = Boolean(getKey());
      const ok = await askForKey(refused
        ? "The server refused the stored API key. Enter the right one."
        : "This server needs an API key. It is kept in this browser and sent with every "
          + "request.");
      if (!ok) {
        throw new ApiError(401, "unauthorized", KEY_NEEDED);
      }
    }
  }
}

function markKeyRequired() {
  state.keyRequired = true;
  show(ui.keyButton);
}

function askForKey(message) {
  if (state.keyPrompt) {
    return state.keyPrompt;
  }
  state.keyPrompt = new Promise((resolve) => {
    state.keyResolve = resolve;
  });
  ui.keyMessage.textContent = message;
  ui.keyError.textContent = "";
  ui.keyInput.value = "";
  show(ui.keyForget, Boolean(getKey()));
  ui.keyDialog.showModal();
  ui.keyInput.focus();
  return state.keyPrompt;
}

function finishKeyPrompt(ok) {
  const resolve = state.keyResolve;
  state.keyPrompt = null;
  state.keyResolve = null;
  if (ui.keyDialog.open) {
    ui.keyDialog.close();
  }
  if (resolve) {
    resolve(ok);
  }
}

async function saveKey(event) {
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) {
    ui.keyError.textContent = "Enter the API key.";
    ui.keyInput.focus();
    return;
  }
  const previous = getKey();
  const previousRemembered = isKeyRemembered();
  setKey(key, ui.keyRemember.checked);
  ui.keyError.textContent = "Checking the key…";
  try {
    await getJson("stats");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      if (previous) {
        setKey(previous, previousRemembered);
      } else {
        clearKey();
      }
      ui.keyError.textContent = `The server refused this key: ${error.message}`;
      ui.keyInput.select();
      return;
    }
    // any other failure (e.g. not ready yet) is not about the key: keep it
  }
  ui.keyError.textContent = "";
  finishKeyPrompt(true);
  if (state.collection === "failed") {
    loadCollection(); // it failed for want of the key
  }
}

async function changeKey() {
  const ok = await askForKey("Enter the API key for this server.");
  if (ok) {
    if (state.collection !== "failed") {
      loadCollection(); // (saveKey already reloads a collection that failed)
    }
    if (state.search) {
      runSearch(true);
    }
  }
}

// ----- images ----------------------------------------------------------------------------------

const lazyObserver = "IntersectionObserver" in window
  ? new IntersectionObserver(onVisible, { rootMargin: "400px" })
  : null;

function onVisible(entries) {
  for (const entry of entries) {
    if (entry.isIntersecting) {
      lazyObserver.unobserve(entry.target);
      loadKeyed(entry.target);
    }
  }
}

async function loadKeyed(img) {
  const path = img.dataset.src;
  try {
    const url = await withKey(() => imageObjectUrl(path), { prompt: false });
    if (img.dataset.src === path && img.isConnected) {
      img.src = url;
    } else {
      URL.revokeObjectURL(url);
    }
  } catch {
    markBroken(img);
  }
}

function markBroken(img) {
  img.classList.add("broken");
  const frame = img.closest(".thumb, .cite-thumb, .detail-image-wrap");
  if (frame) {
    frame.classList.add("broken");
  }
}

/** Show an API image: a plain lazy <img src> without a key, fetched with the key otherwise. */
function setImage(img, path, { eager = false } = {}) {
  release(img);
  img.dataset.src = path;
  img.classList.remove("broken");
  if (!getKey()) {
    img.loading = eager ? "eager" : "lazy";
    img.src = apiUrl(path);
  } else if (lazyObserver && !eager) {
    lazyObserver.observe(img);
  } else {
    loadKeyed(img);
  }
}

function release(img) {
  if (lazyObserver) {
    lazyObserver.unobserve(img);
  }
  if (img.src.startsWith("blob:")) {
    URL.revokeObjectURL(img.src);
  }
  img.removeAttribute("src");
}

function releaseAll(root) {
  for (const img of root.querySelectorAll("img")) {
    release(img);
  }
}

function sized(path, size) {
  const url = new URL(path, document.baseURI);
  url.searchParams.set("size", String(size));
  return url.pathname + url.search;
}

function altText(hit) {
  return hit.caption ? hit.caption : `Item ${hit.id} (no caption)`;
}

function formatScore(score) {
  return typeof score === "number" ? score.toFixed(3) : "";
}

// ----- views -----------------------------------------------------------------------------------

function showView(name, { updateHash = true } = {}) {
  for (const [key, tab] of Object.entries(ui.tabs)) {
    const active = key === name;
    tab.setAttribute("aria-pressed", String(active));
    show(ui.views[key], active);
  }
  document.body.dataset.view = name;
  if (updateHash) {
    history.replaceState(null, "", name === "chat" ? "#chat" : "#search");
  }
}

// ----- collection and filters ------------------------------------------------------------------

async function loadCollection() {
  state.collection = "loading";
  let ok = true;
  try {
    const stats = await withKey(() => getJson("stats"));
    ui.collectionInfo.textContent = `${stats.collection} · ${stats.count} items · `
      + `${stats.query_model || stats.model}`;
    show(ui.error, false);
  } catch (error) {
    ok = false;
    ui.collectionInfo.textContent = "";
    showError(ui.error, "Could not load the collection", error);
  }
  try {
    const fields = await withKey(() => getJson("fields"), { prompt: false });
    renderFields(fields.fields || []);
  } catch (error) {
    ok = false;
    ui.filtersNote.textContent = `Filters are unavailable: ${messageOf(error)}`;
  }
  state.collection = ok ? "loaded" : "failed";
}

function renderFields(fields) {
  clear(ui.filterFields);
  state.filterControls = [];
  const metadata = fields.filter((f) => f.kind === "metadata");
  ui.filtersNote.textContent = metadata.length
    ? "Only results matching every filter are shown (search and chat)."
    : "This collection has no metadata fields; filter on the caption.";
  metadata.forEach((field, index) => addFieldControl(field, index));
  addTextControl({ name: "caption", label: "caption contains" }, metadata.length);
  updateFilterCount();
}

function addFieldControl(field, index) {
  const id = `filter-${index}`;
  const types = field.types || [];
  if (types.length === 1 && types[0] === "number" && !field.values) {
    const from = el("input", { id: `${id}-min`, type: "number", step: "any", inputMode: "decimal" });
    const to = el("input", { id: `${id}-max`, type: "number", step: "any", inputMode: "decimal" });
    const box = el("fieldset", { className: "filter range" },
      el("legend", { text: field.name }),
      el("label", { for: from.id, text: "from" }), from,
      el("label", { for: to.id, text: "to" }), to);
    ui.filterFields.append(box);
    for (const input of [from, to]) {
      input.addEventListener("change", onFilterChange);
    }
    state.filterControls.push({
      name: field.name,
      read() {
        const condition = {};
        if (from.value !== "" && Number.isFinite(Number(from.value))) {
          condition.gte = Number(from.value);
        }
        if (to.value !== "" && Number.isFinite(Number(to.value))) {
          condition.lte = Number(to.value);
        }
        return Object.keys(condition).length ? condition : undefined;
      },
      reset() {
        from.value = "";
        to.value = "";
      },
    });
    return;
  }
  if (field.values && field.values.length) {
    const select = el("select", { id, name: field.name },
      el("option", { value: "", text: "any" }),
      field.values.map((value, i) => el("option", { value: String(i), text: String(value) })));
    ui.filterFields.append(el("div", { className: "filter" },
      el("label", { for: id, text: field.name }), select));
    select.addEventListener("change", onFilterChange);
    state.filterControls.push({
      name: field.name,
      read: () => (select.value === "" ? undefined : field.values[Number(select.value)]),
      reset() {
        select.value = "";
      },
    });
    return;
  }
  addTextControl({ name: field.name, label: `${field.name} contains` }, index,
    types.length === 1 && types[0] === "string");
}

function addTextControl({ name, label }, index, contains = true) {
  const id = `filter-${index}-text`;
  const input = el("input", { id, type: "text", autocomplete: "off", spellcheck: false });
  ui.filterFields.append(el("div", { className: "filter" }, el("label", { for: id, text: label }),
    input));
  input.addEventListener("change", onFilterChange);
  state.filterControls.push({
    name,
    read() {
      const text = input.value.trim();
      if (!text) {
        return undefined;
      }
      return contains ? { contains: text } : text;
    },
    reset() {
      input.value = "";
    },
  });
}

function currentFilter() {
  const filter = {};
  for (const control of state.filterControls) {
    const condition = control.read();
    if (condition !== undefined) {
      filter[control.name] = condition;
    }
  }
  return Object.keys(filter).length ? filter : null;
}

function updateFilterCount() {
  const filter = currentFilter();
  const count = filter ? Object.keys(filter).length : 0;
  ui.filterCount.textContent = count ? `${count} on` : "";
  ui.chatFilterNote.textContent = count
    ? `Filters on: ${Object.keys(filter).join(", ")}`
    : "";
}

function onFilterChange() {
  updateFilterCount();
  if (state.search) {
    runSearch(true);
  }
}

function clearFilters() {
  for (const control of state.filterControls) {
    control.reset();
  }
  onFilterChange();
}

// ----- search ----------------------------------------------------------------------------------

function startSearch(search) {
  state.search = search;
  renderSummary(search);
  return runSearch(true);
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
  show(ui.intro, false);
  show(ui.error, false);
  show(ui.empty, false);
  ui.more.disabled = true;
  ui.results.setAttribute("aria-busy", "true");
  ui.views.search.classList.add("loading");
  ui.status.textContent = reset ? "Searching…" : "Loading more results…";
  try {
    const page = await withKey(() => {
      const signal = controller.signal;
      if (search.kind === "text") {
        return postJson("search", { query: search.query, ...options }, { signal });
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
      ui.views.search.classList.remove("loading");
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
    button.addEventListener("click", clearFilters);
    ui.empty.append(el("p", {}, "Filters are on; they may exclude every item. ", button));
  } else {
    ui.empty.append(el("p", { text: "Try other words, or search with an image." }));
  }
  show(ui.empty);
}

function card(hit, index) {
  const img = el("img", { alt: altText(hit), width: 256, height: 256, decoding: "async" });
  img.addEventListener("error", () => markBroken(img));
  setImage(img, hit.thumbnail_url);
  const button = el("button", { type: "button", className: "card", "data-id": hit.id,
    "data-rank": index + 1 },
  el("span", { className: "thumb" }, img),
  el("span", { className: "card-caption", "aria-hidden": "true",
    text: hit.caption || "(no caption)" }),
  el("span", { className: "score", text: `score ${formatScore(hit.score)}` }));
  button.addEventListener("click", () => openDetail(hit, button));
  return el("li", { className: "result" }, button);
}

function messageOf(error) {
  return error instanceof ApiError || error instanceof Error ? error.message : String(error);
}

function showError(box, title, error) {
  clear(box);
  const type = error instanceof ApiError && error.type ? error.type : "";
  box.append(el("p", { className: "error-title", text: title }),
    el("p", { className: "error-message", text: messageOf(error) }));
  if (type) {
    box.append(el("p", { className: "error-type",
      text: `${type}${error.status ? ` · HTTP ${error.status}` : ""}` }));
  }
  if (error instanceof ApiError && error.status === 401) {
    const button = el("button", { type: "button", className: "ghost small",
      text: "Enter API key" });
    button.addEventListener("click", changeKey);
    box.append(button);
  }
  show(box);
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

// ----- detail ----------------------------------------------------------------------------------

function openDetail(hit, opener) {
  state.detailHit = hit;
  state.detailOpener = opener;
  ui.detailTitle.textContent = hit.caption || "(no caption)";
  ui.detailImage.alt = altText(hit);
  setImage(ui.detailImage, sized(hit.thumbnail_url, DETAIL_SIZE), { eager: true });
  clear(ui.detailMeta);
  const rows = [["id", hit.id]];
  if (typeof hit.score === "number") {
    rows.push(["score", formatScore(hit.score)]);
  }
  if (hit.n) {
    rows.push(["cited as", `[${hit.n}]`]);
  }
  rows.push(["source", hit.source]);
  if (hit.modality) {
    rows.push(["modality", hit.modality]);
  }
  for (const [key, value] of Object.entries(hit.metadata || {})) {
    rows.push([key, typeof value === "string" ? value : JSON.stringify(value)]);
  }
  for (const [key, value] of rows) {
    if (value !== undefined && value !== null && value !== "") {
      ui.detailMeta.append(el("dt", { text: key }), el("dd", { text: value }));
    }
  }
  ui.detail.showModal();
  ui.detailSimilar.focus();
}

function closeDetail() {
  ui.detail.close();
}

function onDetailClosed() {
  release(ui.detailImage);
  const opener = state.detailOpener;
  state.detailOpener = null;
  if (opener && opener.isConnected) {
    opener.focus();
  }
}

function moreLikeThis() {
  const hit = state.detailHit;
  if (!hit) {
    return;
  }
  state.detailOpener = null;
  closeDetail();
  showView("search");
  startSearch({ kind: "similar", id: hit.id, label: hit.caption || hit.id,
    thumb: hit.thumbnail_url });
  ui.summary.focus();
}

// ----- chat ------------------------------------------------------------------------------------

function addMessage(role) {
  const body = el("div", { className: "msg-body" });
  const item = el("li", { className: `msg msg-${role}` },
    el("p", { className: "who", text: role === "user" ? "You" : "Answer" }), body);
  ui.chatLog.append(item);
  show(ui.chatIntro, false);
  return { item, body };
}

let scrollPending = false;

function scrollChat(item) {
  if (scrollPending) {
    return;
  }
  scrollPending = true;
  requestAnimationFrame(() => {
    scrollPending = false;
    item.scrollIntoView({ block: "end" });
  });
}

async function onChatSubmit(event) {
  event.preventDefault();
  if (state.chat.controller) {
    return;
  }
  const text = ui.chatInput.value.trim();
  if (!text) {
    showError(ui.chatError, "Nothing to ask", new Error("Type a question first."));
    ui.chatInput.focus();
    return;
  }
  show(ui.chatError, false);
  ui.chatInput.value = "";
  const user = addMessage("user");
  user.body.append(el("p", { text }));
  state.chat.messages.push({ role: "user", content: text });

  const answer = addMessage("assistant");
  answer.item.setAttribute("aria-busy", "true");
  const paragraph = el("p", { className: "answer-text streaming" });
  const streamed = document.createTextNode("");
  paragraph.append(streamed, el("span", { className: "cursor", "aria-hidden": "true" }));
  answer.body.append(paragraph);
  scrollChat(answer.item);

  const controller = new AbortController();
  state.chat.controller = controller;
  setChatBusy(true);
  ui.chatStatus.textContent = "Retrieving images and writing the answer…";
  const body = { messages: state.chat.messages, k: 6 };
  const filter = currentFilter();
  if (filter) {
    body.filter = filter;
  }
  let final = null;
  try {
    await withKey(async () => {
      for await (const { event: name, data } of streamChat(body, { signal: controller.signal })) {
        if (name === "token") {
          streamed.appendData(data.delta || "");
          scrollChat(answer.item);
        } else if (name === "citations") {
          final = data;
        } else if (name === "error") {
          const problem = data.error || {};
          throw new ApiError(0, problem.type || "error", problem.message || "the answer failed");
        }
      }
    });
    if (!final) {
      throw new ApiError(0, "incomplete", "The answer stream ended early.");
    }
    renderAnswer(answer.body, final);
    state.chat.messages.push({ role: "assistant", content: final.answer });
    ui.chatStatus.textContent = `Answer complete, citing ${final.citations.length} `
      + `image${final.citations.length === 1 ? "" : "s"}.`;
  } catch (error) {
    state.chat.messages.pop(); // the question can be asked again
    paragraph.classList.remove("streaming");
    if (error && error.name === "AbortError") {
      answer.body.append(el("p", { className: "muted", text: "(stopped)" }));
      ui.chatStatus.textContent = "Stopped.";
    } else {
      const box = el("div", { className: "error", role: "alert" });
      showError(box, "The answer failed", error);
      answer.body.append(box);
      ui.chatStatus.textContent = "";
    }
  } finally {
    answer.item.setAttribute("aria-busy", "false");
    state.chat.controller = null;
    setChatBusy(false);
    scrollChat(answer.item);
  }
}

function setChatBusy(busy) {
  ui.chatSend.disabled = busy;
  show(ui.chatStop, busy);
  if (!busy && document.activeElement === ui.chatStop) {
    ui.chatInput.focus();
  }
}

const CITATION_MARK = /\[(\d+(?:\s*,\s*\d+)*)\]/g;

/** The final answer: text with each [n] followed by the cited image, then the cited items. */
function renderAnswer(container, final) {
  releaseAll(container);
  clear(container);
  const byNumber = new Map(final.citations.map((c) => [c.n, c]));
  const paragraph = el("p", { className: "answer-text" });
  const text = final.answer || "";
  let last = 0;
  for (const match of text.matchAll(CITATION_MARK)) {
    paragraph.append(text.slice(last, match.index));
    const marker = el("span", { className: "cite" }, el("span", { className: "cite-n",
      text: match[0] }));
    for (const part of match[1].split(",")) {
      const citation = byNumber.get(Number(part.trim()));
      if (citation) {
        marker.append(citeThumb(citation));
      }
    }
    paragraph.append(marker);
    last = match.index + match[0].length;
  }
  paragraph.append(text.slice(last));
  container.append(paragraph);
  container.classList.toggle("with-citations", final.citations.length > 0);
  if (final.citations.length) {
    const list = el("ul", { className: "cited", "aria-label": "Cited images" });
    for (const citation of final.citations) {
      list.append(el("li", {}, citedCard(citation)));
    }
    container.append(list);
  }
  if (final.model) {
    container.append(el("p", { className: "muted small-print",
      text: `Model: ${final.model}` }));
  }
}

function citeThumb(citation) {
  const img = el("img", { alt: altText(citation), width: 40, height: 40, decoding: "async" });
  img.addEventListener("error", () => markBroken(img));
  setImage(img, sized(citation.thumbnail_url, CITE_SIZE));
  const button = el("button", { type: "button", className: "cite-thumb",
    title: `[${citation.n}] ${citation.caption || citation.id}` }, img);
  button.addEventListener("click", () => openDetail(citation, button));
  return button;
}

function citedCard(citation) {
  const img = el("img", { alt: altText(citation), width: 96, height: 96, decoding: "async" });
  img.addEventListener("error", () => markBroken(img));
  setImage(img, sized(citation.thumbnail_url, CITE_SIZE));
  const button = el("button", { type: "button", className: "cited-card" },
    el("span", { className: "thumb" }, img),
    el("span", { className: "cited-n", "aria-hidden": "true", text: `[${citation.n}]` }),
    el("span", { className: "card-caption", "aria-hidden": "true",
      text: citation.caption || "(no caption)" }));
  button.addEventListener("click", () => openDetail(citation, button));
  return button;
}

function newConversation() {
  if (state.chat.controller) {
    state.chat.controller.abort();
  }
  state.chat.messages = [];
  releaseAll(ui.chatLog);
  clear(ui.chatLog);
  show(ui.chatError, false);
  show(ui.chatIntro);
  ui.chatStatus.textContent = "New conversation.";
  ui.chatInput.focus();
}

// ----- wiring ----------------------------------------------------------------------------------

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

function init() {
  ui.tabs.search.addEventListener("click", () => showView("search"));
  ui.tabs.chat.addEventListener("click", () => showView("chat"));
  ui.searchForm.addEventListener("submit", onSearchSubmit);
  ui.more.addEventListener("click", () => runSearch(false));
  ui.filterClear.addEventListener("click", clearFilters);
  ui.detailSimilar.addEventListener("click", moreLikeThis);
  ui.detailClose.addEventListener("click", closeDetail);
  ui.detail.addEventListener("close", onDetailClosed);
  ui.detail.addEventListener("click", (event) => {
    if (event.target === ui.detail) {
      closeDetail(); // a click on the backdrop
    }
  });
  ui.keyForm.addEventListener("submit", saveKey);
  ui.keyCancel.addEventListener("click", () => finishKeyPrompt(false));
  ui.keyForget.addEventListener("click", () => {
    clearKey();
    ui.keyError.textContent = "The key was forgotten.";
    show(ui.keyForget, false);
  });
  ui.keyDialog.addEventListener("cancel", (event) => {
    event.preventDefault();
    finishKeyPrompt(false);
  });
  ui.keyButton.addEventListener("click", changeKey);
  ui.chatForm.addEventListener("submit", onChatSubmit);
  ui.chatInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.chatForm.requestSubmit();
    }
  });
  ui.chatStop.addEventListener("click", () => state.chat.controller?.abort());
  ui.chatNew.addEventListener("click", newConversation);
  wireDropZone();
  if (getKey()) {
    markKeyRequired();
  }
  showView(location.hash === "#chat" ? "chat" : "search", { updateHash: false });
  document.body.dataset.ready = "true";
  loadCollection();
}

init();
