// The views, Search, Chat and Duplicates: the tabs switch between them and the URL's #search /
// #chat / #duplicates remembers which one is shown.

import { byId, show } from "./dom.js";

const tabs = { search: byId("tab-search"), chat: byId("tab-chat"),
  duplicates: byId("tab-duplicates") };
const views = { search: byId("view-search"), chat: byId("view-chat"),
  duplicates: byId("view-duplicates") };
const shown = {}; // view name -> what to run when it is shown (onShow)

/** Run fn each time the view is shown (e.g. load it the first time). */
export function onShow(name, fn) {
  shown[name] = fn;
}

export function showView(name, { updateHash = true } = {}) {
  for (const [key, tab] of Object.entries(tabs)) {
    const active = key === name;
    tab.setAttribute("aria-pressed", String(active));
    show(views[key], active);
  }
  document.body.dataset.view = name;
  if (updateHash) {
    history.replaceState(null, "", name in views && name !== "search" ? `#${name}` : "#search");
  }
  if (shown[name]) {
    shown[name]();
  }
}

/** The tabs, and the view the URL asks for. */
export function wireViews() {
  tabs.search.addEventListener("click", () => showView("search"));
  tabs.chat.addEventListener("click", () => showView("chat"));
  tabs.duplicates.addEventListener("click", () => showView("duplicates"));
  const asked = location.hash.slice(1);
  showView(asked in views ? asked : "search", { updateHash: false });
}
